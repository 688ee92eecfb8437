package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Server is a PostgreSQL server owned by one test, which may stop it and
// start it again on the same port with the same data: an outage and a
// recovery. Tests that do not stop the database use NewDatabase instead.
type Server struct {
	t    testing.TB
	bin  string
	dir  string
	port int
	cred *syscall.Credential

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
}

// StartServer runs initdb and postgres in t.TempDir() on a free loopback
// port, with durability off (fsync and friends: the data is thrown away).
// The server is stopped when t ends. Without PostgreSQL's binaries it skips
// t, or fails it if EnvRequire is 1. As root, PostgreSQL (which refuses to
// run as root) runs as the postgres user, created if missing, as
// scripts/pg.sh does.
func StartServer(t testing.TB) *Server {
	t.Helper()
	bin, err := findBin()
	if err != nil {
		if os.Getenv(EnvRequire) == "1" {
			t.Fatalf("pgtest: %v and %s=1; run make test", err, EnvRequire)
		}
		t.Skipf("pgtest: %v; run make test", err)
	}
	s := &Server{t: t, bin: bin, dir: t.TempDir()}
	if os.Getuid() == 0 {
		if s.cred, err = postgresUser(); err != nil {
			t.Fatalf("pgtest: %v", err)
		}
		if err := handTo(s.dir, s.cred); err != nil {
			t.Fatalf("pgtest: %v", err)
		}
	}
	data := filepath.Join(s.dir, "data")
	initdb := exec.Command(filepath.Join(bin, "initdb"), "-D", data, "-U", "postgres", "--auth=trust",
		"-E", "UTF8", "--locale=C", "--no-sync")
	initdb.Dir = s.dir
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
	if out, err := initdb.CombinedOutput(); err != nil {
		t.Fatalf("pgtest: initdb: %v\n%s", err, out)
	}
	for range 5 {
		if s.port, err = freePort(); err != nil {
			continue
		}
		if err = s.start(); err == nil {
			t.Cleanup(s.Stop)
			return s
		}
	}
	t.Fatalf("pgtest: %v", err)
	return nil
}

// URL is the admin URL of the server's postgres database.
func (s *Server) URL() string {
	return "postgres://postgres@" + net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) + "/postgres?sslmode=disable"
}

// Stop shuts the server down (fast shutdown: open sessions are ended, as
// when an operator stops it). Stopping a stopped server does nothing.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-s.exited:
	case <-time.After(30 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
	s.cmd = nil
}

// Start starts a stopped server again, on the same port with the same data.
func (s *Server) Start() {
	s.t.Helper()
	var err error
	// The port may linger briefly after the stop.
	for range 50 {
		if err = s.start(); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.t.Fatalf("pgtest: restart: %v", err)
}

func (s *Server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return nil
	}
	logPath := filepath.Join(s.dir, "postgres.log")
	logFile, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logFile.Close()
	cmd := exec.Command(filepath.Join(s.bin, "postgres"), "-D", filepath.Join(s.dir, "data"),
		"-p", strconv.Itoa(s.port),
		"-c", "listen_addresses=127.0.0.1",
		"-c", "unix_socket_directories="+s.dir,
		"-c", "max_connections=100",
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off")
	cmd.Dir = s.dir
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start postgres: %w", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return fmt.Errorf("postgres on port %d exited; see %s", s.port, logPath)
		default:
		}
		if ready(s.URL()) {
			s.cmd, s.exited = cmd, exited
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	_ = cmd.Process.Kill()
	<-exited
	return fmt.Errorf("postgres on port %d did not answer; see %s", s.port, logPath)
}

// ready reports whether the server accepts a connection and a query.
func ready(url string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		return false
	}
	defer c.Close(ctx)
	return c.Ping(ctx) == nil
}

// findBin returns the directory holding initdb and postgres: the newest
// /usr/lib/postgresql/<version>/bin (Debian keeps them off PATH), else PATH.
func findBin() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	slices.SortFunc(dirs, func(a, b string) int { return versionOf(a) - versionOf(b) })
	if len(dirs) > 0 {
		return filepath.Dir(dirs[len(dirs)-1]), nil
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		if _, err := exec.LookPath("postgres"); err == nil {
			return filepath.Dir(p), nil
		}
	}
	return "", errors.New("PostgreSQL server binaries (initdb, postgres) not found")
}

// versionOf is the major version in /usr/lib/postgresql/<version>/bin/initdb.
func versionOf(path string) int {
	v := filepath.Base(filepath.Dir(filepath.Dir(path)))
	n, _ := strconv.Atoi(strings.SplitN(v, ".", 2)[0])
	return n
}

// postgresUser returns the credential of the postgres user, creating the
// user if missing.
func postgresUser() (*syscall.Credential, error) {
	u, err := user.Lookup("postgres")
	if err != nil {
		out, cerr := exec.Command("useradd", "--system", "--user-group", "--home-dir", "/nonexistent",
			"--no-create-home", "--shell", "/usr/sbin/nologin", "postgres").CombinedOutput()
		if cerr != nil {
			return nil, fmt.Errorf("create user postgres: %v: %s", cerr, out)
		}
		if u, err = user.Lookup("postgres"); err != nil {
			return nil, err
		}
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// handTo gives dir to the postgres user and lets it through the test's
// temporary directories above it (created 0700, owned by root).
func handTo(dir string, cred *syscall.Credential) error {
	if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
		return err
	}
	tmp := filepath.Clean(os.TempDir())
	for p := filepath.Dir(dir); strings.HasPrefix(p, tmp+string(filepath.Separator)); p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil {
			return err
		}
		if err := os.Chmod(p, fi.Mode().Perm()|0o111); err != nil {
			return err
		}
	}
	return nil
}

// freePort returns a loopback port nobody listens on (the kernel picks it).
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
