package redistest

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// Set is a group of redis-server processes started by one of the scripts
// (scripts/redis-cluster.sh, scripts/redis-sentinel.sh) for one test, and
// stopped when it ends.
type Set struct {
	t   testing.TB
	dir string
	// URL is the set's keymint Redis URL (redis+cluster:// or
	// redis+sentinel://).
	URL string
}

// StartCluster starts a three-master Redis Cluster (scripts/redis-cluster.sh).
func StartCluster(t testing.TB) *Set { return startSet(t, "redis-cluster.sh") }

// StartSentinel starts a master, a replica and three sentinels
// (scripts/redis-sentinel.sh); the master's name is "keymint".
func StartSentinel(t testing.TB) *Set { return startSet(t, "redis-sentinel.sh") }

func startSet(t testing.TB, script string) *Set {
	t.Helper()
	for _, bin := range []string{"redis-server", "redis-cli"} {
		if _, err := exec.LookPath(bin); err != nil {
			skipOrFail(t, bin+" not installed")
		}
	}
	_, file, _, _ := runtime.Caller(0)
	path := filepath.Join(filepath.Dir(file), "..", "..", "..", "scripts", script)
	s := &Set{t: t, dir: filepath.Join(t.TempDir(), "set")}
	var out, errOut bytes.Buffer
	cmd := exec.Command("bash", path, "start", s.dir)
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	t.Cleanup(func() { _ = exec.Command("bash", path, "stop", s.dir).Run() })
	if err != nil {
		t.Fatalf("%s start: %v\n%s", script, err, errOut.String())
	}
	s.URL = strings.TrimSpace(out.String())
	return s
}

// Node is one process of a Set, by its directory name (master, replica,
// sentinel-1, node-1...).
func (s *Set) Node(name string) (pid, port int) {
	s.t.Helper()
	read := func(f string) int {
		b, err := os.ReadFile(filepath.Join(s.dir, name, f))
		if err != nil {
			s.t.Fatalf("redistest: %v", err)
		}
		n, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil {
			s.t.Fatalf("redistest: %s/%s: %v", name, f, err)
		}
		return n
	}
	return read("redis.pid"), read("port")
}

// Pause freezes a node (SIGSTOP): it accepts connections and answers
// nothing, like a hung host. The set's stop resumes it.
func (s *Set) Pause(name string) { s.signal(name, syscall.SIGSTOP) }

// Resume thaws a paused node (SIGCONT).
func (s *Set) Resume(name string) { s.signal(name, syscall.SIGCONT) }

func (s *Set) signal(name string, sig syscall.Signal) {
	s.t.Helper()
	pid, _ := s.Node(name)
	if err := syscall.Kill(pid, sig); err != nil {
		s.t.Fatalf("redistest: signal %s: %v", name, err)
	}
}
