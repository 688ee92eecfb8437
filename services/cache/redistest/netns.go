package redistest

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// Netns is a redis-server in a network namespace of its own, reached over
// a veth pair (scripts/redis-netns.sh), so a test can partition the
// network between it and keymint while both keep running.
type Netns struct {
	t      testing.TB
	script string
	dir    string
	// URL is the server's redis:// URL (an address on the veth pair).
	URL string
}

// StartNetns starts the server, or skips t when not root or without
// ip(8): network namespaces need both, which make test does not promise.
func StartNetns(t testing.TB) *Netns {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("redistest: network namespaces need root")
	}
	for _, bin := range []string{"ip", "redis-server", "redis-cli"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("redistest: %s not installed", bin)
		}
	}
	_, file, _, _ := runtime.Caller(0)
	n := &Netns{t: t, script: filepath.Join(filepath.Dir(file), "..", "..", "..", "scripts", "redis-netns.sh"),
		dir: filepath.Join(t.TempDir(), "netns")}
	t.Cleanup(func() { _ = exec.Command("bash", n.script, "stop", n.dir).Run() })
	n.URL = strings.TrimSpace(n.run("start"))
	return n
}

// Partition takes the link down: every packet is dropped silently, both
// ways; connections stay open and nothing arrives. Heal undoes it.
func (n *Netns) Partition() { n.run("partition") }

// Heal brings the link up again.
func (n *Netns) Heal() { n.run("heal") }

func (n *Netns) run(cmd string) string {
	n.t.Helper()
	var out, errOut bytes.Buffer
	c := exec.Command("bash", n.script, cmd, n.dir)
	c.Stdout, c.Stderr = &out, &errOut
	if err := c.Run(); err != nil {
		n.t.Fatalf("redis-netns.sh %s: %v\n%s", cmd, err, errOut.String())
	}
	return out.String()
}
