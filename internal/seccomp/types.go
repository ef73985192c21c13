package seccomp

import "errors"

// Options selects what the filter permits beyond the base deny set. The zero
// value is the strictest filter.
type Options struct {
	// AllowPtrace is set when the proc.ptrace capability is granted: ptrace,
	// process_vm_readv and process_vm_writev are then allowed.
	AllowPtrace bool
	// ObserveWrites hands the system calls that change the filesystem by
	// path (Observed: opens with a write flag, creations, removals,
	// renames, links, truncate, chmod) to the supervisor, which reports
	// the ones that will be refused and lets every one of them run: the
	// mounts and Landlock still decide. Reads stay unobserved.
	ObserveWrites bool
	// CheckAllocations hands fallocate to the supervisor, which refuses
	// one that would take the free space of a host filesystem the session
	// writes below the policy's floor (limits.disk_free) and lets the
	// others run. See Allocation.
	CheckAllocations bool
}

// Notification is one SECCOMP_IOCTL_NOTIF_RECV result: a syscall that the
// filter handed to the supervisor, with the target blocked until [Respond].
type Notification struct {
	ID   uint64    // cookie to pass to Respond
	PID  uint32    // thread ID of the target, in the listener's PID namespace
	Arch uint32    // AUDIT_ARCH_* of the call
	Nr   int32     // syscall number
	IP   uint64    // instruction pointer at the call
	Args [6]uint64 // raw syscall arguments
}

// Rule describes why a notified syscall is denied, for the denial event.
type Rule struct {
	Syscall    string // "mount"
	Rule       string // stable rule id, e.g. "seccomp.deny.mount"
	Capability string // capability that would allow the call, "" if none can
	Detail     string // one short sentence for the agent: what the call tried
}

// ErrNotSupported is returned where this OS or architecture has no filter.
var ErrNotSupported = errors.New("seccomp filter not supported on this platform")

// ErrTargetGone is matched (with errors.Is) by a Receive or Respond error that
// means the notifying thread no longer waits: it was killed, or the
// notification was withdrawn. The same error also matches unix.ENOENT and is
// an *os.SyscallError. A supervisor loop skips it and carries on.
var ErrTargetGone = errors.New("seccomp notification target is gone")
