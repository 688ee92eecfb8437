// Package hashworker runs argon2id in a child process at the lowest CPU
// priority, so that a sign-in flood's hashing takes only the CPU time that
// token validation leaves.
//
// Why a process: x/crypto/argon2 computes its lane segments in goroutines
// of its own, on the Go runtime's ordinary threads, so no per-thread
// priority inside keymint reaches the work. The worker is keymint itself,
// re-executed (/proc/self/exe) under the name argv0, with every thread at
// nice 19, GOMAXPROCS = the hashing slots and a soft memory limit sized
// for them. It only computes keys: the caller keeps the slots, waits,
// parameters, salts and comparisons (services/accounts).
package hashworker

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"sync"
	"time"
)

// Nice is the worker's nice value: the lowest priority. Raising one's own
// nice value needs no capability, so it works as a non-root user with no
// privilege escalation, and inside a container's CPU cgroup.
const Nice = 19

// memoryHeadroomMiB is the worker's soft memory limit above its slots'
// hashes: its runtime, stacks and frames.
const memoryHeadroomMiB = 16

// ErrUnavailable means the worker could not answer: it could not be
// started, or it died with the request in flight. The request may be
// retried; the next one starts a new worker.
var ErrUnavailable = errors.New("password hashing worker unavailable")

// selfExe is this process's binary, also if it was replaced or deleted
// on disk since it started (an upgrade in place).
const selfExe = "/proc/self/exe"

// ErrUnsupported means this process cannot start a worker (no
// /proc/self/exe, not Linux, or a binary that does not call Dispatch).
var ErrUnsupported = errors.New("hash worker: cannot re-execute this binary")

// Config configures a Worker.
type Config struct {
	// Slots is how many keys the worker computes at once: the caller's
	// hashing slots. The worker's GOMAXPROCS.
	Slots int
	// MemoryKiB is argon2's memory per hash, which sizes the worker's soft
	// memory limit (Slots × MemoryKiB + 16 MiB).
	MemoryKiB uint32
	// Logger gets the worker's starts and exits (never an input); nil
	// discards them.
	Logger *slog.Logger
	// Stderr gets the worker's stderr (a crash's stack trace holds no
	// input: Go prints argument words, not what they point to); nil:
	// this process's stderr.
	Stderr io.Writer
	// Idle is how long a worker with nothing to do lives on; 0 means
	// DefaultIdle. The next hash starts a new one.
	Idle time.Duration
}

// DefaultIdle is how long an idle worker lives on: long enough that
// sign-ins a few seconds apart share one, short enough that a server
// between sign-ins holds no second process (an idle worker's RSS is
// 27-30 MB, mostly pages of the binary).
const DefaultIdle = 30 * time.Second

// Worker is the parent side: it starts the worker process when first
// needed, sends it requests and restarts it after it died.
type Worker struct {
	cfg Config
	log *slog.Logger
	// inChild bounds the requests the worker has and has not answered,
	// also those whose caller stopped waiting, so it never holds more than
	// Slots hashes' memory and a request's write never blocks.
	inChild chan struct{}

	mu     sync.Mutex
	proc   *process
	nextID uint64
	starts int
	closed bool
	// users counts the IDKey calls between running and their return;
	// idleGen, bumped when one starts, tells a retire timer it is stale.
	users   int
	idleGen uint64
}

// process is one run of the worker.
type process struct {
	cmd   *exec.Cmd
	stdin *os.File
	wmu   sync.Mutex // one frame at a time on stdin

	mu      sync.Mutex
	pending map[uint64]chan result
	ended   bool
	// retired: keymint closed its stdin because it idled (or at Close).
	retired bool
	// done is closed when the process has exited and been waited for.
	done chan struct{}
}

type result struct {
	key []byte
	err error
}

// New returns a Worker, or ErrUnsupported when this process cannot start
// one. It starts nothing: the first IDKey does.
func New(cfg Config) (*Worker, error) {
	if cfg.Slots < 1 {
		cfg.Slots = 1
	}
	if !spawnable {
		return nil, fmt.Errorf("%w: main does not call hashworker.Dispatch", ErrUnsupported)
	}
	if err := niceSupported(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnsupported, err)
	}
	if _, err := os.Stat(selfExe); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnsupported, err)
	}
	if cfg.Stderr == nil {
		cfg.Stderr = os.Stderr
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.Idle <= 0 {
		cfg.Idle = DefaultIdle
	}
	return &Worker{cfg: cfg, log: log, inChild: make(chan struct{}, cfg.Slots)}, nil
}

// IDKey is argon2.IDKey computed by the worker. It returns when the key
// is there, ctx ends, or the worker dies (ErrUnavailable).
func (w *Worker) IDKey(ctx context.Context, password, salt []byte, passes, memoryKiB uint32, threads uint8, keyLen uint32) ([]byte, error) {
	select {
	case w.inChild <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	p, id, err := w.running()
	if err != nil {
		<-w.inChild
		return nil, err
	}
	defer w.leave()
	frame, err := appendRequest(nil, request{id: id, params: Params{Time: passes, MemoryKiB: memoryKiB, Threads: threads, KeyLen: keyLen},
		salt: salt, password: password})
	if err != nil {
		<-w.inChild
		return nil, err
	}
	ch := make(chan result, 1)
	if !p.register(id, ch) {
		<-w.inChild
		return nil, fmt.Errorf("%w: it exited", ErrUnavailable)
	}
	if onRequest != nil {
		onRequest(p.cmd.Process.Pid)
	}
	p.wmu.Lock()
	_, werr := p.stdin.Write(frame)
	p.wmu.Unlock()
	clear(frame)
	if werr != nil {
		// The worker is gone or going; make sure, so that its reader
		// fails every request in flight (this one too) and the next call
		// starts another.
		_ = p.cmd.Process.Kill()
	}
	select {
	case r := <-ch:
		return r.key, r.err
	case <-ctx.Done():
		// The answer still comes (or the worker's death), and only then is
		// the request's place in the worker given back.
		return nil, ctx.Err()
	}
}

// onRequest, set by tests only, runs after a request is registered and
// before it is written, with the worker's pid.
var onRequest func(pid int)

// running returns the worker process, started if none runs, and a
// request id.
func (w *Worker) running() (*process, uint64, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil, 0, fmt.Errorf("%w: closed", ErrUnavailable)
	}
	w.nextID++
	if w.proc != nil && !w.proc.hasEnded() {
		w.users++
		w.idleGen++
		return w.proc, w.nextID, nil
	}
	p, err := w.start()
	if err != nil {
		w.log.Error("hash worker did not start", "err", err.Error())
		return nil, 0, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	w.proc = p
	w.starts++
	w.users++
	w.idleGen++
	return p, w.nextID, nil
}

// leave ends an IDKey call; the last one out arms the retire timer.
func (w *Worker) leave() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.users--
	if w.users == 0 {
		gen := w.idleGen
		time.AfterFunc(w.cfg.Idle, func() { w.retire(gen) })
	}
}

// retire closes the worker's stdin if nothing used it since the timer of
// gen was armed and it holds no abandoned request; it exits on the EOF.
func (w *Worker) retire(gen uint64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	p := w.proc
	if p == nil || w.users > 0 || w.idleGen != gen {
		return
	}
	p.mu.Lock()
	busy := len(p.pending) > 0
	p.retired = !busy
	p.mu.Unlock()
	if busy {
		// An abandoned request is still computed: look again later.
		time.AfterFunc(w.cfg.Idle, func() { w.retire(gen) })
		return
	}
	w.proc = nil
	p.wmu.Lock()
	p.stdin.Close()
	p.wmu.Unlock()
}

// start starts a worker process at nice 19 (startNiced).
func (w *Worker) start() (*process, error) {
	inR, inW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		inR.Close()
		inW.Close()
		return nil, err
	}
	cmd := &exec.Cmd{
		Path:  selfExe,
		Args:  []string{argv0, fmt.Sprint(w.cfg.Slots)},
		Stdin: inR, Stdout: outW, Stderr: w.cfg.Stderr,
		// Nothing of keymint's environment (peppers, database URLs):
		// only what sizes the worker's runtime.
		Env: []string{
			fmt.Sprintf("GOMAXPROCS=%d", w.cfg.Slots),
			fmt.Sprintf("GOMEMLIMIT=%dMiB", int64(w.cfg.Slots)*int64(w.cfg.MemoryKiB)/1024+memoryHeadroomMiB),
		},
	}
	err = startNiced(cmd)
	inR.Close()
	outW.Close()
	if err != nil {
		inW.Close()
		outR.Close()
		return nil, err
	}
	p := &process{cmd: cmd, stdin: inW, pending: map[uint64]chan result{}, done: make(chan struct{})}
	// Debug: after each idle end the next sign-in starts one; unexpected
	// exits are warnings.
	w.log.Debug("hash worker started", "pid", cmd.Process.Pid, "slots", w.cfg.Slots, "nice", Nice)
	go w.read(p, outR)
	return p, nil
}

// read delivers p's answers until its stdout ends, then fails what is
// still in flight and waits for the process.
func (w *Worker) read(p *process, out *os.File) {
	in := bufio.NewReaderSize(out, 4+9+maxKeyLen)
	var failure error
	for {
		body, err := readFrame(in, nil)
		if err == nil {
			var a answer
			if a, err = parseAnswer(body); err == nil {
				err = p.deliver(w, a)
			}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, os.ErrClosed) {
				failure = err
				_ = p.cmd.Process.Kill()
			}
			break
		}
	}
	out.Close()
	p.end(w)
	p.stdin.Close()
	err := p.cmd.Wait()
	p.mu.Lock()
	retired := p.retired
	p.mu.Unlock()
	switch {
	case failure != nil:
		w.log.Error("hash worker stopped", "pid", p.cmd.Process.Pid, "err", failure.Error(), "exit", fmt.Sprint(err))
	case retired && err == nil:
		w.log.Debug("hash worker ended, idle", "pid", p.cmd.Process.Pid)
	default:
		w.log.Warn("hash worker exited", "pid", p.cmd.Process.Pid, "exit", fmt.Sprint(err))
	}
	close(p.done)
}

func (p *process) register(id uint64, ch chan result) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ended {
		return false
	}
	p.pending[id] = ch
	return true
}

func (p *process) hasEnded() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.ended
}

// deliver hands an answer to its caller (who may have stopped waiting).
func (p *process) deliver(w *Worker, a answer) error {
	p.mu.Lock()
	ch, ok := p.pending[a.id]
	delete(p.pending, a.id)
	p.mu.Unlock()
	if !ok {
		return fmt.Errorf("hash worker protocol: answer to no request")
	}
	r := result{key: a.key}
	if !a.ok {
		r.err = fmt.Errorf("hash worker refused the parameters")
	}
	ch <- r
	<-w.inChild
	return nil
}

// end fails every request in flight: the worker is gone.
func (p *process) end(w *Worker) {
	p.mu.Lock()
	p.ended = true
	pending := p.pending
	p.pending = nil
	p.mu.Unlock()
	for _, ch := range pending {
		ch <- result{err: fmt.Errorf("%w: it exited with the request in flight", ErrUnavailable)}
		<-w.inChild
	}
}

// Stats describes a Worker.
type Stats struct {
	// PID is the running worker process's id, 0 when none runs.
	PID int
	// Pending counts the requests it has and has not answered yet.
	Pending int
	// Starts counts the worker processes started.
	Starts int
}

// Stats returns what the Worker is doing.
func (w *Worker) Stats() Stats {
	w.mu.Lock()
	defer w.mu.Unlock()
	st := Stats{Starts: w.starts}
	if p := w.proc; p != nil {
		p.mu.Lock()
		if !p.ended {
			st.PID, st.Pending = p.cmd.Process.Pid, len(p.pending)
		}
		p.mu.Unlock()
	}
	return st
}

// Close ends the worker: its stdin closes, it finishes what it has and
// exits; after timeout it is killed. Later calls fail with ErrUnavailable.
func (w *Worker) Close(timeout time.Duration) {
	w.mu.Lock()
	w.closed = true
	p := w.proc
	w.mu.Unlock()
	if p == nil {
		return
	}
	p.mu.Lock()
	p.retired = true
	p.mu.Unlock()
	p.wmu.Lock()
	p.stdin.Close()
	p.wmu.Unlock()
	select {
	case <-p.done:
	case <-time.After(timeout):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}
