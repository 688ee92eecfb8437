package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// tsClientDir is the TypeScript client, relative to this package.
const tsClientDir = "../../../clients/typescript"

// TestTypeScriptClient runs the generated TypeScript client's own tests
// (node --test) against a live keymint: mint with a password, list,
// validate, revoke, the policy round-trip, the Semaphore routes and the
// error shapes. Node and the client's node_modules (npm ci, which
// scripts/test.sh runs when they are missing) are required under make test.
func TestTypeScriptClient(t *testing.T) {
	t.Parallel()
	node, err := exec.LookPath("node")
	if err == nil {
		_, err = os.Stat(filepath.Join(tsClientDir, "node_modules", "openapi-fetch"))
	}
	if err != nil {
		if os.Getenv("KEYMINT_TEST_REQUIRE_SERVICES") == "1" {
			t.Fatalf("node or the TypeScript client's node_modules is missing (%v): run scripts/test.sh, which runs npm ci", err)
		}
		t.Skipf("node or the TypeScript client's node_modules is missing (%v); make test installs them", err)
	}
	srv := startServer(t, testConfig(t))
	const email, password = "ts-admin@acme.example", "typescript-client-password"
	createUser(t, srv.cfg, email, "acme", password, true)

	cmd := exec.CommandContext(t.Context(), node, "--test", "--test-reporter=spec", "test/")
	cmd.Dir = tsClientDir
	cmd.Env = append(os.Environ(), "KEYMINT_BASE_URL="+srv.http, "KEYMINT_EMAIL="+email, "KEYMINT_PASSWORD="+password)
	cmd.WaitDelay = 10 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node --test: %v\n%s", err, out)
	}
	t.Logf("node --test:\n%s", out)
}
