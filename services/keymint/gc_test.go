package main

import (
	"math"
	"testing"
)

// The soft memory limit: the flag, else the argon2 budget plus headroom;
// never above 90% of a container's cgroup limit.
func TestMemoryLimit(t *testing.T) {
	t.Parallel()
	const mib = 1 << 20
	for _, tc := range []struct {
		name         string
		flag, budget uint
		cgroup       uint64
		want         int64
		wantFrom     string
	}{
		{"default, no cgroup", 0, 256, 0, 320 * mib, "argon2-budget-mib+64MiB"},
		{"cgroup v1 without a limit", 0, 256, math.MaxInt64 &^ 4095, 320 * mib, "argon2-budget-mib+64MiB"},
		{"flag", 512, 256, 0, 512 * mib, "memory-limit-mib"},
		{"small container", 0, 256, 256 * mib, 241591910, "cgroup"},
		{"large container", 0, 256, 4096 * mib, 320 * mib, "argon2-budget-mib+64MiB"},
		{"flag above the container", 2048, 256, 1024 * mib, 966367641, "cgroup"},
	} {
		got, from := memoryLimit(tc.flag, tc.budget, tc.cgroup)
		if got != tc.want || from != tc.wantFrom {
			t.Errorf("%s: %d MiB from %s, want %d MiB from %s", tc.name, got/mib, from, tc.want/mib, tc.wantFrom)
		}
	}
}
