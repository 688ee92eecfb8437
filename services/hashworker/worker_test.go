package hashworker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/keymint/keymint/services/testlog"
	"golang.org/x/crypto/argon2"
)

// The main goroutine stays on the main thread, so that TestMain can start
// a process from it (TestStartFromMainThread).
func init() { runtime.LockOSThread() }

// fromMainThread is what starting /bin/true from the main thread left:
// the nice value of the main thread after, and the error.
var fromMainThread struct {
	nice int
	err  error
}

// The test binary is its own worker: started as argv0, it serves.
func TestMain(m *testing.M) {
	Dispatch()
	if syscall.Gettid() == syscall.Getpid() {
		cmd := exec.Command("/bin/true")
		_, fromMainThread.err = startOnLockedThread(cmd)
		if fromMainThread.err == nil {
			fromMainThread.err = cmd.Wait()
		}
		prio, err := syscall.Getpriority(syscall.PRIO_PROCESS, 0)
		fromMainThread.nice = 20 - prio // the raw syscall's 20 - nice
		if err != nil {
			fromMainThread.err = err
		}
	} else {
		fromMainThread.err = errors.New("TestMain not on the main thread")
	}
	runtime.UnlockOSThread()
	os.Exit(m.Run())
}

// Started from the main thread, which the runtime never ends, the worker
// still starts, and the main thread keeps its nice value. Seen to fail
// with startOnLockedThread's main-thread branch removed (the main thread
// stayed at nice 19).
func TestStartFromMainThread(t *testing.T) {
	own, err := syscall.Getpriority(syscall.PRIO_PROCESS, syscall.Gettid())
	if err != nil {
		t.Fatal(err)
	}
	if fromMainThread.err != nil || fromMainThread.nice != 20-own {
		t.Errorf("from the main thread: %v, its nice %d after, want %d", fromMainThread.err, fromMainThread.nice, 20-own)
	}
}

// newWorker returns a Worker on this test binary, closed when t ends, with
// its stderr and log in out.
func newWorker(t *testing.T, slots int, out *syncBuffer) *Worker {
	t.Helper()
	w, err := New(Config{Slots: slots, MemoryKiB: 64, Stderr: out, Logger: slog.New(slog.NewTextHandler(out, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close(10 * time.Second) })
	return w
}

// setOnRequest installs the test hook for t's duration. Tests using it are
// not parallel.
func setOnRequest(t *testing.T, f func(pid int)) {
	onRequest = f
	t.Cleanup(func() { onRequest = nil })
}

// Keys from the worker are argon2.IDKey's, for many concurrent callers on
// two slots and for every parameter shape, and one worker serves them all.
func TestRoundTrip(t *testing.T) {
	w := newWorker(t, 2, &syncBuffer{})
	type job struct {
		pw, salt    []byte
		passes, mem uint32
		threads     uint8
		keyLen      uint32
	}
	var jobs []job
	for i := range 24 {
		jobs = append(jobs, job{
			pw: bytes.Repeat([]byte{byte(i)}, i*40), salt: []byte("salt-" + strconv.Itoa(i) + "-0123456789"),
			passes: uint32(1 + i%3), mem: uint32(64 + 8*(i%4)), threads: uint8(1 + i%2), keyLen: uint32(16 + i%49),
		})
	}
	jobs = append(jobs, job{pw: bytes.Repeat([]byte("x"), MaxPasswordLen), salt: bytes.Repeat([]byte("s"), maxSaltLen), passes: 1, mem: 64, threads: 1, keyLen: maxKeyLen})
	var wg sync.WaitGroup
	for _, j := range jobs {
		wg.Go(func() {
			got, err := w.IDKey(context.Background(), j.pw, j.salt, j.passes, j.mem, j.threads, j.keyLen)
			if err != nil {
				t.Error(err)
				return
			}
			if want := argon2.IDKey(j.pw, j.salt, j.passes, j.mem, j.threads, j.keyLen); !bytes.Equal(got, want) {
				t.Errorf("key for %d-byte password with t=%d m=%d p=%d: %x, want %x", len(j.pw), j.passes, j.mem, j.threads, got, want)
			}
		})
	}
	wg.Wait()
	if st := w.Stats(); st.Starts != 1 || st.Pending != 0 || st.PID == 0 {
		t.Errorf("stats %+v, want one worker running, nothing pending", st)
	}
}

// Parameters outside the bounds are refused by the worker, which keeps
// serving; what cannot be framed is refused before it is sent.
func TestRefusesOutOfBounds(t *testing.T) {
	w := newWorker(t, 1, &syncBuffer{})
	salt := []byte("0123456789abcdef")
	for _, p := range []Params{{0, 64, 1, 32}, {maxTime + 1, 64, 1, 32}, {1, 7, 1, 32}, {1, maxMemoryKiB + 1, 1, 32},
		{1, 64, 0, 32}, {1, 256, maxThreads + 1, 32}, {1, 64, 1, 3}, {1, 64, 1, maxKeyLen + 1}} {
		if _, err := w.IDKey(context.Background(), []byte("pw"), salt, p.Time, p.MemoryKiB, p.Threads, p.KeyLen); err == nil || errors.Is(err, ErrUnavailable) {
			t.Errorf("%+v: %v, want refused", p, err)
		}
	}
	if _, err := w.IDKey(context.Background(), make([]byte, MaxPasswordLen+1), salt, 1, 64, 1, 32); err == nil {
		t.Error("an over-long password was sent")
	}
	if _, err := w.IDKey(context.Background(), []byte("pw"), salt, 1, 64, 1, 32); err != nil {
		t.Fatal(err)
	}
	if st := w.Stats(); st.Starts != 1 {
		t.Errorf("stats %+v: refusals restarted the worker", st)
	}
}

// niceOf returns the nice value of every thread of pid (field 19 of
// /proc/PID/task/TID/stat), by thread id.
func niceOf(t *testing.T, pid int) map[string]int {
	t.Helper()
	dirs, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*", pid))
	if err != nil || len(dirs) == 0 {
		t.Fatalf("threads of %d: %v", pid, err)
	}
	nices := map[string]int{}
	for _, d := range dirs {
		b, err := os.ReadFile(d + "/stat")
		if err != nil {
			continue // the thread ended
		}
		// The command (field 2) is in parentheses and may hold spaces.
		f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
		n, err := strconv.Atoi(f[19-3])
		if err != nil {
			t.Fatal(err)
		}
		nices[filepath.Base(d)] = n
	}
	return nices
}

// Every thread of the worker runs at nice 19, also those its runtime
// started for the hashing; this process's threads keep their nice value
// (the one that started the worker ended). Seen to fail before
// startOnLockedThread had its main-thread branch, when the start ran on
// the main thread: the runtime parked it at nice 19.
func TestWorkerThreadsAtNice19(t *testing.T) {
	before := niceOf(t, os.Getpid())
	own, err := syscall.Getpriority(syscall.PRIO_PROCESS, 0)
	if err != nil {
		t.Fatal(err)
	}
	own = 20 - own // the raw syscall returns 20 - nice
	w := newWorker(t, 2, &syncBuffer{})
	// Enough concurrent hashes with two lanes that the worker's runtime
	// starts its threads.
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			if _, err := w.IDKey(context.Background(), []byte("pw"), []byte("0123456789abcdef"), 2, 4096, 2, 32); err != nil {
				t.Error(i, err)
			}
		})
	}
	wg.Wait()
	pid := w.Stats().PID
	threads := niceOf(t, pid)
	if len(threads) < 2 {
		t.Errorf("worker has %d threads", len(threads))
	}
	for tid, n := range threads {
		if n != Nice {
			t.Errorf("worker thread %s at nice %d, want %d", tid, n, Nice)
		}
	}
	// The thread that started the worker ends once its goroutine has
	// returned; wait for that, not for a time.
	for {
		other := map[string]int{}
		for tid, n := range niceOf(t, os.Getpid()) {
			if n != own {
				other[tid] = n
			}
		}
		if len(other) == 0 {
			break
		}
		if d, ok := t.Deadline(); ok && time.Until(d) < 10*time.Second {
			t.Fatalf("test process threads %v not at nice %d as before (threads then: %v)", other, own, before)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// serve answers frames in order of completion and ends with the stream;
// what is not a frame ends it with an error, having computed nothing.
func TestServeFrames(t *testing.T) {
	var in bytes.Buffer
	for id := range uint64(3) {
		b, err := appendRequest(nil, request{id: id + 7, params: Params{1, 64, 1, 32}, salt: []byte("0123456789abcdef"), password: []byte("pw")})
		if err != nil {
			t.Fatal(err)
		}
		in.Write(b)
	}
	var out syncBuffer
	if err := serve(&in, &out, 2, time.Hour); err != nil {
		t.Fatal(err)
	}
	want := argon2.IDKey([]byte("pw"), []byte("0123456789abcdef"), 1, 64, 1, 32)
	r := strings.NewReader(out.String())
	seen := map[uint64]bool{}
	for range 3 {
		body, err := readFrame(r, nil)
		if err != nil {
			t.Fatal(err)
		}
		a, err := parseAnswer(body)
		if err != nil || !a.ok || !bytes.Equal(a.key, want) || a.id < 7 || a.id > 9 || seen[a.id] {
			t.Fatalf("answer %+v, %v", a, err)
		}
		seen[a.id] = true
	}
	for _, garbage := range []string{"\xff\xff\xff\xff", "\x00\x00\x00\x03abc", "\x00\x00\x00\x20short"} {
		var out syncBuffer
		if err := serve(strings.NewReader(garbage), &out, 1, time.Hour); err == nil {
			t.Errorf("%q served", garbage)
		}
		if out.String() != "" {
			t.Errorf("%q answered %q", garbage, out.String())
		}
	}
}

// A worker killed with a request in flight fails it with ErrUnavailable
// (never a key, never a hang), and the next request starts a new worker.
func TestWorkerKilledInFlight(t *testing.T) {
	out := &syncBuffer{}
	w := newWorker(t, 1, out)
	if _, err := w.IDKey(context.Background(), []byte("pw"), []byte("0123456789abcdef"), 1, 64, 1, 32); err != nil {
		t.Fatal(err)
	}
	first := w.Stats().PID
	// SIGKILL is final once sent: the worker runs no instruction after
	// it, so the request registered now is in flight when it dies.
	setOnRequest(t, func(pid int) {
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Error(err)
		}
	})
	key, err := w.IDKey(context.Background(), []byte("pw"), []byte("0123456789abcdef"), 1, 64, 1, 32)
	if !errors.Is(err, ErrUnavailable) || key != nil {
		t.Fatalf("request to a killed worker: %x, %v; want ErrUnavailable", key, err)
	}
	onRequest = nil
	got, err := w.IDKey(context.Background(), []byte("pw"), []byte("0123456789abcdef"), 1, 64, 1, 32)
	if err != nil {
		t.Fatal(err)
	}
	if want := argon2.IDKey([]byte("pw"), []byte("0123456789abcdef"), 1, 64, 1, 32); !bytes.Equal(got, want) {
		t.Fatal("wrong key from the restarted worker")
	}
	if st := w.Stats(); st.Starts != 2 || st.PID == first || st.PID == 0 {
		t.Errorf("stats %+v after the kill, want a second worker (first was %d)", st, first)
	}
	if !strings.Contains(out.String(), "hash worker exited") {
		t.Errorf("the death was not logged:\n%s", out)
	}
}

// A worker that stops answering (SIGSTOP) holds a caller only as long as
// its context; its place in the worker comes back with the late answer.
func TestStoppedWorkerBoundedByContext(t *testing.T) {
	w := newWorker(t, 1, &syncBuffer{})
	if _, err := w.IDKey(context.Background(), []byte("pw"), []byte("0123456789abcdef"), 1, 64, 1, 32); err != nil {
		t.Fatal(err)
	}
	pid := w.Stats().PID
	ctx, cancel := context.WithCancel(context.Background())
	setOnRequest(t, func(pid int) {
		if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
			t.Error(err)
		}
		cancel()
	})
	if _, err := w.IDKey(ctx, []byte("pw"), []byte("0123456789abcdef"), 1, 64, 1, 32); !errors.Is(err, context.Canceled) {
		t.Fatalf("request to a stopped worker: %v, want context.Canceled", err)
	}
	onRequest = nil
	if st := w.Stats(); st.Pending != 1 {
		t.Errorf("stats %+v: the abandoned request is no longer counted", st)
	}
	if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	// The one slot comes back when the abandoned request is answered.
	if _, err := w.IDKey(context.Background(), []byte("pw"), []byte("0123456789abcdef"), 1, 64, 1, 32); err != nil {
		t.Fatal(err)
	}
	if st := w.Stats(); st.Starts != 1 || st.Pending != 0 {
		t.Errorf("stats %+v, want the same worker, nothing pending", st)
	}
}

// Neither the worker's stderr nor the log ever holds a password or a salt:
// not in normal work, not in refusals, and not in the goroutine dump of a
// worker that crashes (SIGQUIT) with a request in flight (sent as the
// request is: whether the worker read it first is not decided here).
func TestSecretsNeverInWorkerOutput(t *testing.T) {
	out := &syncBuffer{}
	w := newWorker(t, 1, out)
	const pw, salt = "hunter2-the-password-XYZZY", "salt-the-salt-PLUGH"
	if _, err := w.IDKey(context.Background(), []byte(pw), []byte(salt), 1, 64, 1, 32); err != nil {
		t.Fatal(err)
	}
	if _, err := w.IDKey(context.Background(), []byte(pw), []byte(salt), 99, 64, 1, 32); err == nil {
		t.Fatal("out-of-bounds parameters accepted")
	}
	setOnRequest(t, func(pid int) {
		if err := syscall.Kill(pid, syscall.SIGQUIT); err != nil {
			t.Error(err)
		}
	})
	if _, err := w.IDKey(context.Background(), []byte(pw), []byte(salt), 1, 64, 1, 32); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("request to a crashed worker: %v", err)
	}
	onRequest = nil
	if _, err := w.IDKey(context.Background(), []byte(pw), []byte(salt), 1, 64, 1, 32); err != nil {
		t.Fatal(err)
	}
	w.Close(10 * time.Second)
	got := out.String()
	if !strings.Contains(got, "SIGQUIT") {
		t.Fatalf("no crash dump in the worker's stderr:\n%s", got)
	}
	for _, secret := range []string{pw, salt, "XYZZY", "PLUGH"} {
		if strings.Contains(got, secret) {
			t.Errorf("%q in the worker's stderr or log:\n%s", secret, got)
		}
	}
}

// Close ends the worker: it exits on the end of its stdin, and later
// requests fail with ErrUnavailable.
func TestCloseEndsWorker(t *testing.T) {
	w := newWorker(t, 1, &syncBuffer{})
	if _, err := w.IDKey(context.Background(), []byte("pw"), []byte("0123456789abcdef"), 1, 64, 1, 32); err != nil {
		t.Fatal(err)
	}
	p := w.proc
	w.Close(time.Minute)
	if st := p.cmd.ProcessState; st == nil || st.ExitCode() != 0 {
		t.Errorf("worker exit %v, want 0 (end of stdin)", st)
	}
	if _, err := w.IDKey(context.Background(), []byte("pw"), []byte("0123456789abcdef"), 1, 64, 1, 32); !errors.Is(err, ErrUnavailable) {
		t.Errorf("request after Close: %v", err)
	}
}

// A worker with nothing to do ends after Config.Idle (keymint closes its
// stdin), and the next request starts another.
func TestIdleWorkerEnds(t *testing.T) {
	out := &syncBuffer{}
	w, err := New(Config{Slots: 1, MemoryKiB: 64, Stderr: out, Idle: 50 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(out, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close(10 * time.Second) })
	for round := range 2 {
		if _, err := w.IDKey(context.Background(), []byte("pw"), []byte("0123456789abcdef"), 1, 64, 1, 32); err != nil {
			t.Fatal(err)
		}
		// Wait for the event (the worker gone), not for a time.
		for w.Stats().PID != 0 {
			time.Sleep(5 * time.Millisecond)
		}
		if st := w.Stats(); st.Starts != round+1 {
			t.Fatalf("stats %+v in round %d", st, round)
		}
	}
	for !strings.Contains(out.String(), "hash worker ended, idle") {
		time.Sleep(5 * time.Millisecond)
	}
	if strings.Contains(out.String(), "hash worker exited") {
		t.Errorf("an idle end logged as an exit:\n%s", out)
	}
}

// syncBuffer collects log lines (and a child's stderr) from any goroutine.
type syncBuffer = testlog.Buffer
