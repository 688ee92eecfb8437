package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// runBinary runs keymint as its own process (this test binary re-executed
// as keymint: TestMain) with stdin, writing its stdout to out.
// A non-zero exit is an error carrying what the binary printed to stderr.
func runBinary(stdin string, out *bytes.Buffer, args ...string) error {
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "KEYMINT_TEST_MAIN=1")
	cmd.Stdin = strings.NewReader(stdin)
	var errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = out, &errOut
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%v: %s", err, strings.TrimSpace(errOut.String()))
	}
	return nil
}

// The admin commands run as the real binary, in a process of their own, against a running server,
// and their table and JSON output is compared field by field.
func TestAdminCLI(t *testing.T) {
	cfg := testConfig(t)
	const adminEmail, adminPassword = "root@example.com", "the admin's long password"
	createUser(t, cfg, adminEmail, "acme", adminPassword, true)
	createUser(t, cfg, "alice@example.com", "acme", "alice's long password", false)
	srv := startServer(t, cfg)
	// user create says which database it opened, and when it made a new one.
	var out0 bytes.Buffer
	if err := runBinary("bob's long password\n", &out0, "user", "create", "--email", "bob@example.com", "--org", "acme", "--password-stdin",
		"--data-dir", cfg.DataDir, "--argon2-memory-kib", "64", "--argon2-time", "1"); err != nil {
		t.Fatal(err)
	}
	if l := strings.Split(strings.TrimSpace(out0.String()), "\n"); len(l) != 2 || !strings.HasPrefix(l[1], "database: embedded sqlite /") ||
		strings.Contains(l[1], "NEW") {
		t.Errorf("user create on an existing database printed %q", l)
	}
	fresh := t.TempDir()
	out0.Reset()
	if err := runBinary("bob's long password\n", &out0, "user", "create", "--email", "bob@example.com", "--org", "acme", "--password-stdin",
		"--data-dir", fresh, "--argon2-memory-kib", "64", "--argon2-time", "1"); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out0.String(), "database: embedded sqlite "+fresh+"/keymint.db (NEW: there was none") {
		t.Errorf("user create on a new data dir printed %q", out0.String())
	}
	t.Setenv("KEYMINT_ADMIN_PASSWORD", adminPassword)
	run := func(args ...string) (string, error) {
		var out bytes.Buffer
		err := runBinary("", &out, append(args, "--server", srv.GRPCAddr, "--admin-email", adminEmail)...)
		if strings.Contains(out.String(), adminPassword) || err != nil && strings.Contains(err.Error(), adminPassword) {
			t.Fatalf("%v printed the admin's password", args)
		}
		return out.String(), err
	}
	mustRun := func(args ...string) string {
		t.Helper()
		out, err := run(args...)
		if err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		return out
	}
	rows := func(out string) [][]string {
		var r [][]string
		for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
			r = append(r, strings.Fields(l))
		}
		return r
	}

	var list struct {
		Users []struct{ ID, Email string } `json:"users"`
	}
	if err := json.Unmarshal([]byte(mustRun("user", "list", "-o", "json")), &list); err != nil {
		t.Fatal(err)
	}
	if len(list.Users) != 3 || list.Users[0].Email != "alice@example.com" || list.Users[2].Email != adminEmail {
		t.Fatalf("user list -o json = %+v", list.Users)
	}
	alice := list.Users[0].ID

	table := rows(mustRun("user", "list", "--email-prefix", "ali"))
	if len(table) != 2 || strings.Join(table[0], " ") != "ID EMAIL ADMIN DISABLED SCOPES CREATED" ||
		strings.Join(table[1][:5], " ") != alice+" alice@example.com false false (all)" {
		t.Errorf("user list table = %q", table)
	}
	table = rows(mustRun("user", "disable", alice))
	if len(table) != 2 || strings.Join(table[1][:5], " ") != alice+" alice@example.com false true (all)" {
		t.Errorf("user disable = %q", table)
	}

	var sa struct{ ID, Name string }
	if err := json.Unmarshal([]byte(mustRun("service-account", "create", "--name", "ci", "-o", "json")), &sa); err != nil || sa.Name != "ci" {
		t.Fatalf("service-account create = %+v, %v", sa, err)
	}
	out := mustRun("token", "create", "--name", "deploy", "--service-account", sa.ID)
	table = rows(out)
	if len(table) != 3 || strings.Join(table[1][1:5], " ") != "deploy "+sa.ID+" service_account active" ||
		strings.Join(table[2][:3], " ") != "secret (shown once):" || !strings.HasPrefix(table[2][3], "km_") {
		t.Errorf("token create = %q", table)
	}
	table = rows(mustRun("token", "list", "--service-account", sa.ID))
	if len(table) != 2 || table[1][1] != "deploy" {
		t.Errorf("token list --service-account = %q", table)
	}
	if table = rows(mustRun("token", "list", "--all-users")); len(table) != 1 {
		t.Errorf("token list --all-users lists a service account's token: %q", table)
	}
	if out = mustRun("service-account", "delete", sa.ID); strings.TrimSpace(out) != "deleted service account "+sa.ID+": 1 tokens revoked" {
		t.Errorf("service-account delete = %q", out)
	}
	table = rows(mustRun("org", "list"))
	if len(table) != 2 || table[1][1] != "acme" {
		t.Errorf("org list = %q", table)
	}

	// Another organization's id, or a missing credential: errors, all at once.
	if _, err := run("user", "get", "00000000-0000-4000-8000-000000000000"); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("user get (unknown) = %v", err)
	}
	t.Setenv("KEYMINT_ADMIN_PASSWORD", "")
	err := runBinary("", &bytes.Buffer{}, "org", "list", "--server", srv.GRPCAddr, "--timeout", "0s")
	if err == nil || !strings.Contains(err.Error(), "--admin-email is required") || !strings.Contains(err.Error(), "KEYMINT_ADMIN_PASSWORD") ||
		!strings.Contains(err.Error(), "--timeout must be positive") {
		t.Errorf("org list without credentials = %v", err)
	}
}
