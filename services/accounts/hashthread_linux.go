package accounts

import "golang.org/x/sys/unix"

// lowerThreadPriority sets the calling thread's nice value to hashNice.
// Linux keeps a nice value per thread: PRIO_PROCESS with a thread id.
// Raising one's own nice value needs no privilege.
func lowerThreadPriority() error {
	return unix.Setpriority(unix.PRIO_PROCESS, unix.Gettid(), hashNice)
}
