package server

import (
	"math"
	"testing"
)

// The soft memory limit: the flag, else the hashing slots' memory plus
// headroom; never above 90% of a container's cgroup limit.
const mib = 1 << 20

func TestMemoryLimit(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		flag     uint
		hash     int64
		cgroup   uint64
		want     int64
		wantFrom string
	}{
		{"default, no cgroup", 0, 256 * mib, 0, 320 * mib, "hashing slots + 64 MiB"},
		{"one slot", 0, 64 * mib, 0, 128 * mib, "hashing slots + 64 MiB"},
		{"cgroup v1 without a limit", 0, 256 * mib, math.MaxInt64 &^ 4095, 320 * mib, "hashing slots + 64 MiB"},
		{"flag", 512, 256 * mib, 0, 512 * mib, "memory-limit-mib"},
		{"small container", 0, 256 * mib, 256 * mib, 241591910, "cgroup"},
		{"large container", 0, 256 * mib, 4096 * mib, 320 * mib, "hashing slots + 64 MiB"},
		{"flag above the container", 2048, 256 * mib, 1024 * mib, 966367641, "cgroup"},
	} {
		got, from := MemoryLimit(tc.flag, tc.hash, tc.cgroup)
		if got != tc.want || from != tc.wantFrom {
			t.Errorf("%s: %d MiB from %s, want %d MiB from %s", tc.name, got/mib, from, tc.want/mib, tc.wantFrom)
		}
	}
}
