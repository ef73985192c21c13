package seccomp

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// installFlags: TSYNC puts the filter on every thread of the process (the Go
// runtime runs goroutines on many threads); NEW_LISTENER returns the
// notification fd; TSYNC_ESRCH (Linux 5.7+) makes a TSYNC failure return
// ESRCH instead of a thread ID, which is what lets TSYNC and NEW_LISTENER be
// combined at all. WAIT_KILLABLE_RECV (Linux 5.19+): once the supervisor
// has received a notification, only a fatal signal interrupts the
// caller's wait. A supervisor that performs a syscall for the caller (a
// connect) must not see it interrupted after it acted and then restarted
// by the kernel, which would run it twice; on older kernels Install goes
// on without the flag.
const installFlags = unix.SECCOMP_FILTER_FLAG_TSYNC |
	unix.SECCOMP_FILTER_FLAG_TSYNC_ESRCH |
	unix.SECCOMP_FILTER_FLAG_NEW_LISTENER |
	unix.SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV

// Install sets filter on all threads of the calling process and returns the
// notification listener fd, which the kernel opens close-on-exec.
//
// The kernel accepts a filter from a task without CAP_SYS_ADMIN only if that
// task has no_new_privs; with TSYNC it then sets no_new_privs on every
// thread it synchronises. Install sets no_new_privs itself on the thread it
// runs on (locked for the duration), so the precondition cannot be lost to
// goroutine migration between a caller's prctl and the seccomp call. The
// result is no_new_privs on every thread, as the caller requires anyway.
//
// Neither the filter nor no_new_privs can be removed: call Install only in a
// process that is meant to stay confined.
func Install(filter []unix.SockFilter) (listenerFD int, err error) {
	if len(filter) == 0 || len(filter) > maxInstructions {
		return -1, fmt.Errorf("installing seccomp filter: length %d outside 1..%d", len(filter), maxInstructions)
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()

	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return -1, os.NewSyscallError("prctl(PR_SET_NO_NEW_PRIVS)", err)
	}
	prog := unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}
	fd, _, errno := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, installFlags, uintptr(unsafe.Pointer(&prog)))
	if errno == unix.EINVAL {
		fd, _, errno = unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, installFlags&^unix.SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV, uintptr(unsafe.Pointer(&prog)))
	}
	runtime.KeepAlive(filter)
	if errno != 0 {
		return -1, os.NewSyscallError("seccomp(SECCOMP_SET_MODE_FILTER)", errno)
	}
	return int(fd), nil
}

// seccompData is struct seccomp_data.
type seccompData struct {
	Nr   int32
	Arch uint32
	IP   uint64
	Args [6]uint64
}

// seccompNotif is struct seccomp_notif.
type seccompNotif struct {
	ID    uint64
	PID   uint32
	Flags uint32
	Data  seccompData
}

// seccompNotifResp is struct seccomp_notif_resp.
type seccompNotifResp struct {
	ID    uint64
	Val   int64
	Error int32
	Flags uint32
}

// goneError is ENOENT from a notification ioctl: both an *os.SyscallError
// (errors.Is(err, unix.ENOENT)) and ErrTargetGone.
type goneError struct{ sys *os.SyscallError }

func (e *goneError) Error() string   { return e.sys.Error() + " (target gone)" }
func (e *goneError) Unwrap() []error { return []error{ErrTargetGone, e.sys} }

func ioctlErr(name string, errno unix.Errno) error {
	sys := &os.SyscallError{Syscall: name, Err: errno}
	if errno == unix.ENOENT {
		return &goneError{sys: sys}
	}
	return sys
}

// Receive blocks until the filter hands a syscall to the listener fd and
// returns it. EINTR is retried. If the notifying thread died before it could
// be received, the error matches ErrTargetGone (and unix.ENOENT); a
// supervisor loop just calls Receive again. Receive does not return when the
// last task using the filter exits: use Poll to notice that.
func Receive(fd int) (Notification, error) {
	for {
		// The kernel requires a zeroed buffer on every call.
		var n seccompNotif
		_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SECCOMP_IOCTL_NOTIF_RECV, uintptr(unsafe.Pointer(&n)))
		switch errno {
		case 0:
			return Notification{
				ID:   n.ID,
				PID:  n.PID,
				Arch: n.Data.Arch,
				Nr:   n.Data.Nr,
				IP:   n.Data.IP,
				Args: n.Data.Args,
			}, nil
		case unix.EINTR:
			continue
		default:
			return Notification{}, ioctlErr("ioctl(SECCOMP_IOCTL_NOTIF_RECV)", errno)
		}
	}
}

// Respond fails the notified syscall id with errno; the syscall is not run.
// If the target is gone (killed while waiting) the error matches
// ErrTargetGone and unix.ENOENT. errno 0 is refused: with flags 0 it would
// report success for a syscall that never ran.
func Respond(fd int, id uint64, errno unix.Errno) error {
	if errno == 0 || errno > 4095 {
		return fmt.Errorf("responding to seccomp notification: errno %d is not a failure", uintptr(errno))
	}
	return send(fd, &seccompNotifResp{ID: id, Error: -int32(errno)})
}

// Succeed completes the notified syscall id with return value val, as a
// supervisor that performed the syscall itself on the target's behalf
// answers; the target's own syscall is not run. If the target is gone the
// error matches ErrTargetGone.
func Succeed(fd int, id uint64, val int64) error {
	return send(fd, &seccompNotifResp{ID: id, Val: val})
}

// send answers a notification, retrying on EINTR.
func send(fd int, resp *seccompNotifResp) error {
	for {
		_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SECCOMP_IOCTL_NOTIF_SEND, uintptr(unsafe.Pointer(resp)))
		switch e {
		case 0:
			return nil
		case unix.EINTR:
			continue
		default:
			return ioctlErr("ioctl(SECCOMP_IOCTL_NOTIF_SEND)", e)
		}
	}
}

// Continue lets the notified syscall id run as if the filter had allowed
// it (SECCOMP_USER_NOTIF_FLAG_CONTINUE). The kernel re-reads the
// syscall's arguments from the target's memory when it runs it, so a
// decision made from a copy of that memory is only advisory: use Continue
// only where something else (a namespace, Landlock) enforces the outcome.
// If the target is gone the error matches ErrTargetGone.
func Continue(fd int, id uint64) error {
	return send(fd, &seccompNotifResp{ID: id, Flags: unix.SECCOMP_USER_NOTIF_FLAG_CONTINUE})
}

// Valid reports whether notification id still waits for an answer. Call
// it after reading the target's memory through its pid: if the target died
// in between, the pid may name another process and what was read is not
// the target's.
func Valid(fd int, id uint64) bool {
	_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SECCOMP_IOCTL_NOTIF_ID_VALID, uintptr(unsafe.Pointer(&id)))
	return e == 0
}

// ListenerState is what Poll found on a listener fd.
type ListenerState int

const (
	// ListenerIdle: the timeout passed with nothing to receive.
	ListenerIdle ListenerState = iota
	// ListenerPending: a notification is waiting; Receive will not block
	// (unless another reader takes it first).
	ListenerPending
	// ListenerOrphaned: every task using the filter has exited; no further
	// notification can arrive and the supervisor can close the fd.
	ListenerOrphaned
)

func (s ListenerState) String() string {
	switch s {
	case ListenerIdle:
		return "idle"
	case ListenerPending:
		return "pending"
	case ListenerOrphaned:
		return "orphaned"
	}
	return fmt.Sprintf("ListenerState(%d)", int(s))
}

// SyncWakeUp asks the kernel to hand each notification of the listener fd
// over on the notifying thread's CPU and to wake it on the listener's CPU
// when answered (SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP, Linux 6.6): the
// notifying thread waits for the answer anyway, so the supervisor runs in
// its place instead of being woken on another CPU, which on a VM is an
// inter-processor interrupt through the hypervisor each way. Kernels
// without it answer EINVAL (an unknown flag) or ENOTTY (an unknown ioctl);
// the listener then works as before, and SyncWakeUp returns false.
func SyncWakeUp(fd int) (bool, error) {
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SECCOMP_IOCTL_NOTIF_SET_FLAGS, unix.SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP)
	switch errno {
	case 0:
		return true, nil
	case unix.EINVAL, unix.ENOTTY:
		return false, nil
	}
	return false, ioctlErr("ioctl(SECCOMP_IOCTL_NOTIF_SET_FLAGS)", errno)
}

// Poll waits up to timeout (negative: forever) for the listener fd to have a
// notification pending or to be orphaned. EINTR restarts the wait with the
// remaining time.
func Poll(fd int, timeout time.Duration) (ListenerState, error) {
	deadline := time.Now().Add(timeout)
	for {
		ms := -1
		if timeout >= 0 {
			left := time.Until(deadline)
			if left < 0 {
				left = 0
			}
			ms = int((left + time.Millisecond - 1) / time.Millisecond)
		}
		pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, err := unix.Poll(pfd, ms)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return ListenerIdle, os.NewSyscallError("poll", err)
		}
		switch {
		case n == 0:
			return ListenerIdle, nil
		case pfd[0].Revents&unix.POLLIN != 0:
			return ListenerPending, nil
		case pfd[0].Revents&unix.POLLHUP != 0:
			return ListenerOrphaned, nil
		case pfd[0].Revents&unix.POLLNVAL != 0:
			return ListenerIdle, os.NewSyscallError("poll", unix.EBADF)
		default:
			return ListenerIdle, fmt.Errorf("polling seccomp listener: unexpected events %#x", pfd[0].Revents)
		}
	}
}
