//go:build linux && (amd64 || arm64)

package seccomp

import (
	"testing"

	"golang.org/x/sys/unix"
)

// TestFilterChecksAllocations: with CheckAllocations fallocate is handed
// to the supervisor whatever its arguments; without it, it is allowed,
// and nothing else changes either way.
func TestFilterChecksAllocations(t *testing.T) {
	nr, _ := resolve(t, "fallocate")
	if !Allocation(nr) || Observed(nr) || Watched(nr) {
		t.Errorf("fallocate: Allocation %v, Observed %v, Watched %v", Allocation(nr), Observed(nr), Watched(nr))
	}
	for _, name := range []string{"ftruncate", "write", "pwrite64", "openat", "mount"} {
		if n, ok := native.number(name); ok && Allocation(n) {
			t.Errorf("%s is an Allocation", name)
		}
	}
	plain := newVM(t, Options{ObserveWrites: true})
	check := newVM(t, Options{ObserveWrites: true, CheckAllocations: true})
	for _, args := range [][]uint64{{3, 0, 0, 64 << 20}, {3, fallocPunchHole | 0x1, 0, 4096}, {^uint64(0), ^uint64(0), ^uint64(0), ^uint64(0)}} {
		if got := plain.run(t, native64(nr, args...)); got != allow {
			t.Errorf("fallocate %#x without CheckAllocations: %s", args, verdictName(got))
		}
		if got := check.run(t, native64(nr, args...)); got != notify {
			t.Errorf("fallocate %#x with CheckAllocations: %s, want USER_NOTIF", args, verdictName(got))
		}
	}
	// Every other number gets the same verdict with and without it.
	for n := int32(0); n < 2048; n++ {
		if n == nr {
			continue
		}
		c := native64(n, 0xffffffff, 0xffffffff, 0xffffffff)
		if a, b := plain.run(t, c), check.run(t, c); a != b {
			t.Errorf("%s (%d): %s without CheckAllocations, %s with it", Name(n), n, verdictName(a), verdictName(b))
		}
	}
	filter, err := Build(Options{ObserveWrites: true, CheckAllocations: true, AllowPtrace: true})
	if err != nil || len(filter) > maxInstructions {
		t.Fatalf("Build: %d instructions, %v", len(filter), err)
	}
}

func TestAllocationSize(t *testing.T) {
	nr, _ := resolve(t, "fallocate")
	for _, c := range []struct {
		mode, length uint64
		want         int64
	}{
		{0, 64 << 20, 64 << 20},
		{unix.FALLOC_FL_KEEP_SIZE, 1 << 30, 1 << 30},
		{unix.FALLOC_FL_ZERO_RANGE, 4096, 4096},
		{unix.FALLOC_FL_INSERT_RANGE, 8192, 8192},
		{unix.FALLOC_FL_PUNCH_HOLE | unix.FALLOC_FL_KEEP_SIZE, 1 << 30, 0},
		{unix.FALLOC_FL_COLLAPSE_RANGE, 1 << 30, 0},
		{0, 0, 0},
		{0, ^uint64(0), 0},          // -1: EINVAL from the kernel
		{0x1_0000_0000, 4096, 4096}, // mode is an int: high bits ignored
	} {
		if got := AllocationSize(Notification{Nr: nr, Args: [6]uint64{3, c.mode, 0, c.length}}); got != c.want {
			t.Errorf("mode %#x length %#x: %d, want %d", c.mode, c.length, got, c.want)
		}
	}
	if fallocPunchHole != unix.FALLOC_FL_PUNCH_HOLE || fallocCollapseRange != unix.FALLOC_FL_COLLAPSE_RANGE {
		t.Error("fallocate mode constants differ from x/sys/unix")
	}
}
