package redteam

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

func int80(trap, a1, a2, a3 uintptr) uintptr

// x32Bit marks a system call number of the x32 ABI.
const x32Bit = 0x40000000

// abiCall is one system call made through a foreign entry: i386's int
// $0x80 or x32's number space. Arguments are integers (or null), so the
// call is harmless wherever the kernel takes it; what it answers tells
// whether the kernel code was reached.
type abiCall struct {
	abi, name string
	nr        uintptr
	a         [3]uintptr
}

// abiCalls: getpid shows the entry works; the rest are in the seccomp
// deny set (keyctl GET_KEYRING_ID of the session keyring, io_uring_setup
// and perf_event_open with null parameters, unshare(CLONE_NEWUSER)).
var abiCalls = []abiCall{
	{"i386", "getpid", 20, [3]uintptr{}},
	{"i386", "keyctl", 288, [3]uintptr{0, ^uintptr(2) & 0xffffffff, 0}},
	{"i386", "io_uring_setup", 425, [3]uintptr{1, 0, 0}},
	{"i386", "perf_event_open", 336, [3]uintptr{0, 0, 0xffffffff}},
	{"i386", "unshare", 310, [3]uintptr{unix.CLONE_NEWUSER, 0, 0}},
	{"x32", "getpid", x32Bit | 39, [3]uintptr{}},
	{"x32", "keyctl", x32Bit | 250, [3]uintptr{0, ^uintptr(2), 0}},
	{"x32", "io_uring_setup", x32Bit | 425, [3]uintptr{1, 0, 0}},
	{"x32", "perf_event_open", x32Bit | 298, [3]uintptr{0, 0, ^uintptr(0)}},
	{"x32", "unshare", x32Bit | 272, [3]uintptr{unix.CLONE_NEWUSER, 0, 0}},
}

// abi [ABI NAME]: without arguments, run each call in a child of its own
// (a seccomp kill or a missing entry ends only that child) and print
// "ABI abi name result"; with them, make that one call.
func probeABI(args []string) {
	if len(args) == 2 {
		for _, c := range abiCalls {
			if c.abi != args[0] || c.name != args[1] {
				continue
			}
			var r uintptr
			var e syscall.Errno
			if c.abi == "i386" {
				r = int80(c.nr, c.a[0], c.a[1], c.a[2])
				if int32(r) < 0 && int32(r) > -4096 {
					e = syscall.Errno(-int32(r))
				}
			} else {
				r, _, e = unix.RawSyscall(c.nr, c.a[0], c.a[1], c.a[2])
			}
			fmt.Println(errnoName(e))
		}
		return
	}
	self, err := os.Executable()
	if err != nil {
		report("executable", err)
		return
	}
	for _, c := range abiCalls {
		out, err := exec.Command(self, "redteam", "probe", "abi", c.abi, c.name).Output()
		res := strings.TrimSpace(string(out))
		if ee, ok := err.(*exec.ExitError); ok {
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				res = "killed-" + unix.SignalName(ws.Signal())
			}
		}
		if res == "" {
			res = "none"
		}
		fmt.Printf("ABI %s %s %s\n", c.abi, c.name, res)
	}
}
