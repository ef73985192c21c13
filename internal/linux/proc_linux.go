package linux

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
	"kernel.org/pub/linux/libs/security/libcap/psx"
)

// allThreadsPrctl runs prctl on every thread of the process (psx works
// with and without cgo), so that a setting cannot be missing from a
// thread the Go runtime later uses.
func allThreadsPrctl(name string, option, arg2 uintptr) error {
	if _, _, e := psx.Syscall6(syscall.SYS_PRCTL, option, arg2, 0, 0, 0, 0); e != 0 {
		return os.NewSyscallError("prctl "+name, e)
	}
	return nil
}

// SetNoNewPrivs sets no_new_privs on every thread: from here on, execve
// can never grant privileges (setuid bits, file capabilities).
func SetNoNewPrivs() error {
	return allThreadsPrctl("PR_SET_NO_NEW_PRIVS", unix.PR_SET_NO_NEW_PRIVS, 1)
}

// SetNotDumpable makes the process non-dumpable: processes of the same
// uid can no longer ptrace it or open its /proc/PID/mem, environ or fds.
// Dumpability belongs to the process (its mm), not to a thread.
func SetNotDumpable() error {
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		return os.NewSyscallError("prctl PR_SET_DUMPABLE", err)
	}
	return nil
}

// SetChildSubreaper makes orphaned descendants reparent to the caller.
func SetChildSubreaper() error {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return os.NewSyscallError("prctl PR_SET_CHILD_SUBREAPER", err)
	}
	return nil
}

// lastCap reads the highest capability number this kernel knows.
func lastCap() (int, error) {
	b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap")
	if err != nil {
		return 0, err
	}
	n := 0
	for _, c := range b {
		if c >= '0' && c <= '9' {
			n = n*10 + int(c-'0')
		}
	}
	return n, nil
}

// DropBoundingSet removes every capability from the calling thread's
// bounding set, so that no execve by this thread, or by a child it
// forks, can gain one. It needs CAP_SETPCAP. The bounding set belongs to
// the thread: callers lock the OS thread that will fork and exec.
func DropBoundingSet() error {
	last, err := lastCap()
	if err != nil {
		last = unix.CAP_LAST_CAP
	}
	for c := 0; c <= last; c++ {
		// Skip what is gone already: the drop needs CAP_SETPCAP even
		// then, and a supervisor starting a later executor has none.
		if in, err := unix.PrctlRetInt(unix.PR_CAPBSET_READ, uintptr(c), 0, 0, 0); err == nil && in == 0 {
			continue
		}
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0); err != nil && err != unix.EINVAL {
			return os.NewSyscallError("prctl PR_CAPBSET_DROP", err)
		}
	}
	return nil
}

// DropBoundingSetAllThreads is DropBoundingSet on every thread of the
// process (through psx, one signal round per capability: milliseconds).
func DropBoundingSetAllThreads() error {
	last, err := lastCap()
	if err != nil {
		last = unix.CAP_LAST_CAP
	}
	for c := 0; c <= last; c++ {
		if _, _, e := psx.Syscall6(syscall.SYS_PRCTL, unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0, 0); e != 0 && e != unix.EINVAL {
			return os.NewSyscallError("prctl PR_CAPBSET_DROP", e)
		}
	}
	return nil
}

// ClearCapabilities empties the ambient, effective, permitted and
// inheritable capability sets of every thread.
func ClearCapabilities() error { return KeepCapabilities() }

// KeepCapabilities reduces every thread's effective and permitted sets
// to the capabilities given (all below 32) and empties the inheritable
// and ambient sets.
func KeepCapabilities(caps ...uintptr) error {
	if err := allThreadsPrctl("PR_CAP_AMBIENT_CLEAR_ALL", unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL); err != nil {
		return err
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	for _, c := range caps {
		data[0].Effective |= 1 << c
		data[0].Permitted |= 1 << c
	}
	if _, _, e := psx.Syscall3(syscall.SYS_CAPSET, uintptr(unsafe.Pointer(&hdr)), uintptr(unsafe.Pointer(&data[0])), 0); e != 0 {
		return os.NewSyscallError("capset", e)
	}
	return nil
}

// Sethostname sets the UTS hostname of the calling namespace.
func Sethostname(name string) error {
	if err := unix.Sethostname([]byte(name)); err != nil {
		return os.NewSyscallError("sethostname", err)
	}
	return nil
}

// LoopbackUp brings the loopback interface of the calling network
// namespace up; a new namespace starts with it down.
func LoopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return os.NewSyscallError("socket", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return os.NewSyscallError("ioctl SIOCGIFFLAGS", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP | unix.IFF_RUNNING)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return os.NewSyscallError("ioctl SIOCSIFFLAGS", err)
	}
	return nil
}

// CloseExecFrom marks every descriptor from minFD up close-on-exec, so
// nothing a stage inherited by accident (from whoever started cordon)
// reaches the next stage or a tool process.
func CloseExecFrom(minFD int) error {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return err
	}
	for _, e := range ents {
		if fd, err := strconv.Atoi(e.Name()); err == nil && fd >= minFD {
			unix.CloseOnExec(fd)
		}
	}
	return nil
}

// PrewarmThreads makes the Go runtime start n more OS threads now and keep
// them idle. A session's stages share its pids limit with the tool
// processes; when a fork bomb exhausts it, the runtime can no longer
// create a thread and would abort the stage. Threads it already has are
// reused instead (the runtime never frees an idle thread).
func PrewarmThreads(n int) {
	var locked, release sync.WaitGroup
	locked.Add(n)
	release.Add(1)
	var done sync.WaitGroup
	done.Add(n)
	for range n {
		go func() {
			defer done.Done()
			runtime.LockOSThread()
			locked.Done()
			release.Wait()
			runtime.UnlockOSThread()
		}()
	}
	locked.Wait()
	release.Done()
	done.Wait()
}

// SetFSIDs sets the calling thread's file-system uid and gid, the ids the
// kernel checks file permissions against, and verifies that both took:
// setfsuid(2) reports no failure other than a missing CAP_SETUID. The
// caller locks the thread and either sets the ids back or lets the
// thread die with its goroutine.
func SetFSIDs(uid, gid int) error {
	if _, err := unix.SetfsuidRetUid(uid); err != nil {
		return os.NewSyscallError("setfsuid", err)
	}
	if _, err := unix.SetfsgidRetGid(gid); err != nil {
		return os.NewSyscallError("setfsgid", err)
	}
	u, _ := unix.SetfsuidRetUid(-1)
	g, _ := unix.SetfsgidRetGid(-1)
	if u != uid || g != gid {
		return fmt.Errorf("setting file-system ids to %d:%d: the thread has %d:%d", uid, gid, u, g)
	}
	return nil
}
