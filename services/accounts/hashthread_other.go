//go:build !linux

package accounts

import "errors"

// lowerThreadPriority: only Linux has per-thread nice values; elsewhere
// hashing keeps its own thread and P at normal priority.
func lowerThreadPriority() error { return errors.ErrUnsupported }
