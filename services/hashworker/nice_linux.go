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
func startNiced(cmd *exec.Cmd) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		ended, err := startOnLockedThread(cmd)
		if !ended {
			runtime.UnlockOSThread()
		}
		errc <- err
	}()
	return <-errc
}

// startOnLockedThread starts cmd from the calling goroutine's locked
// thread, raised to nice Nice for good (ended: the goroutine must return
// locked). The main thread is the exception: the runtime does not end it
// but parks it for good, so it is left as it is, and kept locked (idle)
// while startNiced does the work on another thread.
func startOnLockedThread(cmd *exec.Cmd) (ended bool, err error) {
	if syscall.Gettid() == syscall.Getpid() {
		return false, startNiced(cmd)
	}
	if err := syscall.Setpriority(syscall.PRIO_PROCESS, syscall.Gettid(), Nice); err != nil {
		return true, err
	}
	return true, cmd.Start()
}
