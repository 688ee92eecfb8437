package hashworker

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/crypto/argon2"
)

// argv0 is the worker's os.Args[0]: how a re-executed keymint (or test
// binary) knows it is the worker. No flag or environment variable an
// operator sets can turn keymint serve into one by mistake.
const argv0 = "keymint-hash-worker"

// spawnable is set by Dispatch: only a binary whose main (or TestMain)
// calls it can be re-executed as the worker. Any other binary (a test
// binary without the call) would run itself again instead.
var spawnable bool

// Dispatch runs the hashing worker and exits if this process was started
// as one; otherwise it returns, and the process may start workers. Call it
// first in main (and in TestMain of tests that start workers).
func Dispatch() {
	if os.Args[0] != argv0 {
		spawnable = true
		return
	}
	// Ctrl-C reaches the whole process group: keymint shuts down
	// gracefully, and its sign-ins in flight still need their hashes. The
	// worker ends when keymint closes its stdin (or dies).
	signal.Ignore(os.Interrupt, syscall.SIGTERM)
	slots := 1
	if len(os.Args) > 1 {
		if n, err := strconv.Atoi(os.Args[1]); err == nil && n > 0 {
			slots = n
		}
	}
	if err := serve(os.Stdin, os.Stdout, slots, time.Second); err != nil {
		// Never an input: serve's errors name the protocol, not the data.
		fmt.Fprintln(os.Stderr, "keymint hash worker:", err)
		os.Exit(2)
	}
	os.Exit(0)
}

// serve answers requests from r on w, at most slots at once, until r ends
// (nil) or carries something that is not a frame (an error). Between
// floods, after idle of doing nothing, it returns the hashes' memory to
// the kernel, so an idle worker stays small. It never writes an input
// anywhere but into argon2.
func serve(r io.Reader, w io.Writer, slots int, idle time.Duration) error {
	in := bufio.NewReaderSize(r, maxFrame+4)
	var (
		wmu     sync.Mutex
		werr    error
		running sync.WaitGroup
		sem     = make(chan struct{}, slots)
		mu      sync.Mutex
		busy    int
		gen     int // bumped when work starts, so a stale idle timer does nothing
	)
	write := func(a answer) {
		frame := appendAnswer(make([]byte, 0, 4+9+len(a.key)), a)
		wmu.Lock()
		defer wmu.Unlock()
		if werr == nil {
			_, werr = w.Write(frame)
		}
	}
	done := func() {
		mu.Lock()
		defer mu.Unlock()
		busy--
		if busy > 0 {
			return
		}
		g := gen
		time.AfterFunc(idle, func() {
			mu.Lock()
			stale := busy > 0 || gen != g
			mu.Unlock()
			if !stale {
				debug.FreeOSMemory()
			}
		})
	}
	defer running.Wait()
	for {
		body, err := readFrame(in, nil)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		req, err := parseRequest(body)
		if err != nil {
			return err
		}
		sem <- struct{}{}
		mu.Lock()
		busy++
		gen++
		mu.Unlock()
		running.Go(func() {
			defer func() { <-sem }()
			defer done()
			a := answer{id: req.id}
			if req.params.valid() && len(req.salt) >= 1 {
				a.ok = true
				a.key = argon2.IDKey(req.password, req.salt, req.params.Time, req.params.MemoryKiB, req.params.Threads, req.params.KeyLen)
			}
			clear(req.password)
			write(a)
			// Collect the hash's memory now, so that the next hash reuses
			// it: argon2 allocates afresh each time, and the collector,
			// started by an allocation, would first let the heap hold two
			// hashes per slot. Under a millisecond against a hash's 100.
			runtime.GC()
		})
	}
}
