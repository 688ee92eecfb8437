package pgtest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// Pair is a PostgreSQL primary with a synchronous streaming standby, owned
// by one test and started by scripts/pg-standby.sh: the standby is a
// pg_basebackup -R copy, and the primary confirms a commit only once the
// standby has flushed it.
type Pair struct {
	t      testing.TB
	script string
	dir    string
	// PrimaryURL and StandbyURL are admin URLs of each server's postgres
	// database.
	PrimaryURL, StandbyURL string
	mu                     sync.Mutex
}

// StartPair starts a primary and its standby on free loopback ports; both
// are stopped and removed when t ends. Without PostgreSQL's binaries it
// skips t, or fails it if EnvRequire is 1.
func StartPair(t testing.TB) *Pair {
	t.Helper()
	if _, err := findBin(); err != nil {
		if os.Getenv(EnvRequire) == "1" {
			t.Fatalf("pgtest: %v and %s=1; run make test", err, EnvRequire)
		}
		t.Skipf("pgtest: %v; run make test", err)
	}
	script, err := repoFile("scripts/pg-standby.sh")
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	// Not t.TempDir(): the postgres user must reach it, and the script
	// refuses a directory it did not make.
	parent, err := os.MkdirTemp("", "keymint-pair-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(parent, 0o755); err != nil {
		t.Fatal(err)
	}
	p := &Pair{t: t, script: script, dir: filepath.Join(parent, "pair")}
	t.Cleanup(func() {
		if out, err := exec.Command("bash", script, "stop", p.dir).CombinedOutput(); err != nil {
			t.Errorf("pgtest: stop pair: %v\n%s", err, out)
		}
		_ = os.RemoveAll(parent)
	})
	out := p.run("start")
	lines := strings.Fields(out)
	if len(lines) != 2 {
		t.Fatalf("pgtest: pg-standby.sh start printed %q, want two URLs", out)
	}
	p.PrimaryURL, p.StandbyURL = lines[0], lines[1]
	return p
}

// FailoverURL is the multi-host URL keymint is given: both servers, and
// only a read-write session accepted, so after a promotion new
// connections find the new primary by themselves.
func (p *Pair) FailoverURL() string {
	hosts := strings.TrimPrefix(strings.SplitN(p.PrimaryURL, "/postgres?", 2)[0], "postgres://postgres@") + "," +
		strings.TrimPrefix(strings.SplitN(p.StandbyURL, "/postgres?", 2)[0], "postgres://postgres@")
	return "postgres://postgres@" + hosts + "/postgres?sslmode=disable&target_session_attrs=read-write"
}

// KillPrimary crashes the primary (immediate shutdown: no checkpoint, every
// session cut).
func (p *Pair) KillPrimary() { p.run("kill-primary") }

// Promote makes the standby the primary and waits until it accepts writes.
func (p *Pair) Promote() { p.run("promote") }

// StopStandby stops the standby (a replica that is down).
func (p *Pair) StopStandby() { p.run("stop-standby") }

// StartStandby starts the stopped standby again on its port.
func (p *Pair) StartStandby() { p.run("start-standby") }

// PauseStandby freezes the standby (SIGSTOP, every process of it): a hung
// host. ResumeStandby thaws it; the test's end does too.
func (p *Pair) PauseStandby() { p.run("pause-standby") }

// ResumeStandby thaws a paused standby (SIGCONT).
func (p *Pair) ResumeStandby() { p.run("resume-standby") }

func (p *Pair) run(cmd string) string {
	p.t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	var stdout, stderr bytes.Buffer
	c := exec.Command("bash", p.script, cmd, p.dir)
	c.Stdout, c.Stderr = &stdout, &stderr
	if err := c.Run(); err != nil {
		p.t.Fatalf("pgtest: pg-standby.sh %s: %v\n%s", cmd, err, stderr.String())
	}
	return stdout.String()
}

// repoFile finds path relative to the repository root (the directory
// holding go.mod), from the test's working directory upwards.
func repoFile(path string) (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, path), nil
		}
		up := filepath.Dir(dir)
		if up == dir {
			return "", fmt.Errorf("no go.mod above the working directory: cannot find %s", path)
		}
		dir = up
	}
}
