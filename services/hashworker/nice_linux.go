package hashworker

import (
	"os/exec"
	"runtime"
	"syscall"
)

func niceSupported() error { return nil }

// startNiced starts cmd at nice Nice, leaving this process's priority as
// it was. On Linux a nice value belongs to a thread, and a new process or
// thread inherits its creator's. So cmd is started from a goroutine locked
// to its OS thread, with that thread's nice value raised first, and the
// goroutine returns still locked: the Go runtime then ends the thread
// instead of handing its lowered priority to other goroutines. Every
// thread the worker's runtime creates inherits nice 19.
//
// Not SysProcAttr.Pdeathsig: it fires when the thread that started the
// child exits, which this thread does at once. The worker ends on EOF on
// its stdin instead, which the kernel gives it when keymint dies.
//
// The main thread is the exception: the runtime does not end it but
// parks it for good, at nice 19. So a goroutine that lands on it keeps it
// locked (and idle) while another goroutine, which therefore runs on
// another thread, does the work; then it lets it go.
func startNiced(cmd *exec.Cmd) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if syscall.Gettid() == syscall.Getpid() {
			errc <- startNiced(cmd)
			runtime.UnlockOSThread()
			return
		}
		if err := syscall.Setpriority(syscall.PRIO_PROCESS, syscall.Gettid(), Nice); err != nil {
			errc <- err
			return
		}
		errc <- cmd.Start()
	}()
	return <-errc
}
