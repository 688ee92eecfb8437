package main

import (
	"context"
	"strings"
	"testing"
)

// keymint webhook create|list|deliveries|delete on the store, as the
// README shows: the secret printed once, never listed; the same URL rules
// as the API.
func TestWebhookCLI(t *testing.T) {
	cfg := testConfig(t)
	run := func(args ...string) (string, error) {
		var out, errOut strings.Builder
		err := realMain(context.Background(), append(append([]string{"webhook"}, args...), "--data-dir", cfg.DataDir, "--log-format", "text"),
			strings.NewReader(""), &out, &errOut)
		return out.String() + errOut.String(), err
	}
	out, err := run("create", "--org", "acme", "--url", "https://93.184.216.34/hook", "--events", "token.created,token.revoked")
	if err != nil || !strings.Contains(out, "signing secret, shown this once: whsec_") {
		t.Fatalf("create: %v\n%s", err, out)
	}
	secret := out[strings.Index(out, "whsec_"):]
	secret = strings.TrimSpace(secret[:strings.IndexAny(secret+"\n", "\n")])
	id := strings.Fields(out)[2]
	if _, err := run("create", "--org", "acme", "--url", "http://127.0.0.1:9/x", "--events", "*"); err == nil {
		t.Fatal("create accepted a loopback http URL without --webhooks-allow-private")
	}
	if _, err := run("create", "--org", "acme", "--url", "https://93.184.216.34/x", "--events", "token.nope"); err == nil {
		t.Fatal("create accepted an unknown event type")
	}
	out, err = run("list", "--org", "acme")
	if err != nil || !strings.Contains(out, id) || !strings.Contains(out, "token.created,token.revoked") || strings.Contains(out, secret) {
		t.Fatalf("list: %v\n%s", err, out)
	}
	if out, err = run("deliveries", "--org", "acme", "--id", id); err != nil || !strings.Contains(out, "STATE") {
		t.Fatalf("deliveries: %v\n%s", err, out)
	}
	if out, err = run("delete", "--org", "acme", "--id", id); err != nil {
		t.Fatalf("delete: %v\n%s", err, out)
	}
	if out, err = run("list", "--org", "acme"); err != nil || strings.Contains(out, id) {
		t.Fatalf("list after delete: %v\n%s", err, out)
	}
}
