package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// binDir holds the keymint binary keymintBinary builds; TestMain removes it.
var binDir string

// buildKeymint builds the keymint command once per test process, for the
// tests that need keymint as a process of its own (one they kill, or one
// configured by its environment).
var buildKeymint = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "keymint-e2e-bin-")
	if err != nil {
		return "", err
	}
	binDir = dir
	bin := filepath.Join(dir, "keymint")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/keymint/keymint/services/keymint")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./services/keymint: %w\n%s", err, out)
	}
	return bin, nil
})

// keymintBinary is the path of the keymint binary, built on first use.
func keymintBinary(t testing.TB) string {
	t.Helper()
	bin, err := buildKeymint()
	if err != nil {
		t.Fatal(err)
	}
	return bin
}
