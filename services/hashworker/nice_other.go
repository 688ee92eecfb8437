//go:build !linux

package hashworker

import (
	"errors"
	"os/exec"
)

// niceSupported: only Linux has per-thread nice values to start the worker
// with (startNiced), and /proc/self/exe.
func niceSupported() error { return errors.New("not Linux") }

func startNiced(*exec.Cmd) error { return niceSupported() }
