package redteam

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/cordon-sandbox/cordon/internal/linux"
)

// ProbeArgs are the arguments that make this binary (the cordon CLI or
// the test binary) run a probe: `BIN redteam probe NAME ARGS...`. The
// harness copies its own executable into the workspace and runs it
// there, so probes need nothing from the view but libc.
var ProbeArgs = []string{"redteam", "probe"}

// IsProbe reports whether args (os.Args[1:]) ask for a probe.
func IsProbe(args []string) bool {
	return len(args) >= 3 && args[0] == ProbeArgs[0] && args[1] == ProbeArgs[1]
}

// ProbeMain runs the probe args[0] with args[1:] and returns the exit
// status. A probe prints "OK <what>" for every primitive that worked
// (what the oracles look for) and "no <what>: <error>" otherwise.
func ProbeMain(args []string) int {
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "probe: name missing")
		return 2
	}
	p, ok := probes[args[0]]
	if !ok {
		fmt.Fprintf(os.Stderr, "probe: unknown %q\n", args[0])
		return 2
	}
	p(args[1:])
	return 0
}

var probes = map[string]func([]string){
	"status":    probeStatus,
	"sys":       probeSyscalls,
	"inject":    probeInject,
	"connect":   probeConnect,
	"dgram":     probeDgram,
	"unixrace":  probeUnixRace,
	"rawsock":   probeRawSock,
	"mount":     probeMount,
	"openw":     probeOpenWrite,
	"dev":       probeDev,
	"tiocsti":   probeTIOCSTI,
	"setns":     probeSetns,
	"kill":      probeKill,
	"setuid":    probeSetuid,
	"clonens":   probeCloneNS,
	"fds":       probeFDs,
	"inotify":   probeInotify,
	"alloc":     probeAlloc,
	"burn":      probeBurn,
	"listen":    probeListen,
	"handle":    probeHandle,
	"procfd":    probeProcFD,
	"linkout":   probeLinkOut,
	"chrootesc": probeChrootEscape,
	"ipc":       probeIPC,
	netStage:    probeFakeNet,
	"proxy":     probeProxy,
	"proxyseq":  probeProxySeq,
	"tunnel":    probeTunnel,
	"tls":       probeTLS,
	"socks":     probeSOCKS,
	"dnsq":      probeDNSQuery,
	"fastopen":  probeFastOpen,
	"connrace":  probeConnRace,
	"vsock":     probeVsock,
	"flood":     probeFlood,
	"api":       probeAPI,
	"abi":       probeABI,
	"exe":       probeExe,
	"hold":      holdProbe,
	"addaddr":   probeAddAddr,
	"mkexec":    probeMkexec,
	"keyread":   probeKeyRead,
	"denyloop":  probeDenyLoop,
}

func report(what string, err error) {
	if err == nil {
		fmt.Printf("OK %s\n", what)
	} else {
		fmt.Printf("no %s: %v\n", what, err)
	}
}

func probeStatus([]string) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		report("status", err)
		return
	}
	for _, l := range strings.Split(string(b), "\n") {
		for _, k := range []string{"Uid:", "CapInh:", "CapPrm:", "CapEff:", "CapBnd:", "CapAmb:", "NoNewPrivs:", "Seccomp:"} {
			if strings.HasPrefix(l, k) {
				fmt.Println(l)
			}
		}
	}
}

// sweep is the syscall reachability sweep: each call with arguments that
// are harmless even where the kernel accepts them (bad pointers, missing
// paths, invalid flags). Where the call reaches the kernel it fails with
// EFAULT/EINVAL/ENOENT/EBADF/ESRCH or returns; a seccomp deny answers
// EPERM (or ENOSYS for clone3).
type sysCall struct {
	name string
	nr   uintptr
	a    [6]uintptr
}

var badPtr = uintptr(1) // never mapped

func cstr(s string) uintptr {
	b := append([]byte(s), 0)
	return uintptr(unsafe.Pointer(&b[0]))
}

func sweep() []sysCall {
	missing := cstr("/nonexistent-cordon-redteam")
	return []sysCall{
		{"keyctl", unix.SYS_KEYCTL, [6]uintptr{0 /*GET_KEYRING_ID*/, ^uintptr(2) /*-3 session*/, 0}},
		{"add_key", unix.SYS_ADD_KEY, [6]uintptr{badPtr, badPtr, badPtr, 1, ^uintptr(1)}},
		{"request_key", unix.SYS_REQUEST_KEY, [6]uintptr{badPtr, badPtr, 0, 0}},
		{"bpf", unix.SYS_BPF, [6]uintptr{5 /*PROG_LOAD*/, badPtr, 8}},
		{"perf_event_open", unix.SYS_PERF_EVENT_OPEN, [6]uintptr{badPtr, 0, ^uintptr(0), ^uintptr(0), 0}},
		{"userfaultfd", unix.SYS_USERFAULTFD, [6]uintptr{0xffff0000}},
		{"io_uring_setup", unix.SYS_IO_URING_SETUP, [6]uintptr{1, badPtr}},
		{"io_uring_enter", unix.SYS_IO_URING_ENTER, [6]uintptr{^uintptr(0), 0, 0, 0, 0, 0}},
		{"io_uring_register", unix.SYS_IO_URING_REGISTER, [6]uintptr{^uintptr(0), 0, 0, 0}},
		{"kexec_load", unix.SYS_KEXEC_LOAD, [6]uintptr{0, 0, 0, 0xdead0000}},
		{"kexec_file_load", unix.SYS_KEXEC_FILE_LOAD, [6]uintptr{^uintptr(0), ^uintptr(0), 0, 0, 0xdead0000}},
		{"init_module", unix.SYS_INIT_MODULE, [6]uintptr{badPtr, 0, badPtr}},
		{"finit_module", unix.SYS_FINIT_MODULE, [6]uintptr{^uintptr(0), cstr(""), 0}},
		{"delete_module", unix.SYS_DELETE_MODULE, [6]uintptr{cstr("cordon_redteam_none"), unix.O_NONBLOCK}},
		{"open_by_handle_at", unix.SYS_OPEN_BY_HANDLE_AT, [6]uintptr{^uintptr(0), badPtr, 0}},
		{"name_to_handle_at", unix.SYS_NAME_TO_HANDLE_AT, [6]uintptr{^uintptr(99), missing, badPtr, badPtr, 0}},
		{"mount", unix.SYS_MOUNT, [6]uintptr{badPtr, badPtr, badPtr, 0, 0}},
		{"umount2", unix.SYS_UMOUNT2, [6]uintptr{missing, 0}},
		{"pivot_root", unix.SYS_PIVOT_ROOT, [6]uintptr{missing, missing}},
		{"chroot", unix.SYS_CHROOT, [6]uintptr{missing}},
		{"setns", unix.SYS_SETNS, [6]uintptr{^uintptr(0), 0}},
		{"open_tree", unix.SYS_OPEN_TREE, [6]uintptr{^uintptr(99), missing, 0}},
		{"move_mount", unix.SYS_MOVE_MOUNT, [6]uintptr{^uintptr(0), badPtr, ^uintptr(0), badPtr, 0}},
		{"fsopen", unix.SYS_FSOPEN, [6]uintptr{badPtr, 0}},
		{"fsconfig", unix.SYS_FSCONFIG, [6]uintptr{^uintptr(0), 0, 0, 0, 0}},
		{"fsmount", unix.SYS_FSMOUNT, [6]uintptr{^uintptr(0), 0, 0}},
		{"fspick", unix.SYS_FSPICK, [6]uintptr{^uintptr(99), missing, 0}},
		{"mount_setattr", unix.SYS_MOUNT_SETATTR, [6]uintptr{^uintptr(99), missing, 0, badPtr, 32}},
		{"ptrace", unix.SYS_PTRACE, [6]uintptr{unix.PTRACE_PEEKDATA, 0x7ffffff0, 0, 0}},
		{"process_vm_readv", unix.SYS_PROCESS_VM_READV, [6]uintptr{0x7ffffff0, badPtr, 1, badPtr, 1, 0}},
		{"process_vm_writev", unix.SYS_PROCESS_VM_WRITEV, [6]uintptr{0x7ffffff0, badPtr, 1, badPtr, 1, 0}},
		{"pidfd_getfd", unix.SYS_PIDFD_GETFD, [6]uintptr{^uintptr(0), 0, 0}},
		{"syslog", unix.SYS_SYSLOG, [6]uintptr{10 /*SIZE_BUFFER*/, 0, 0}},
		{"acct", unix.SYS_ACCT, [6]uintptr{missing}},
		{"swapon", unix.SYS_SWAPON, [6]uintptr{missing, 0}},
		{"swapoff", unix.SYS_SWAPOFF, [6]uintptr{missing}},
		{"reboot", unix.SYS_REBOOT, [6]uintptr{0, 0, 0, 0}},
		{"clock_settime", unix.SYS_CLOCK_SETTIME, [6]uintptr{unix.CLOCK_REALTIME, badPtr}},
		{"settimeofday", unix.SYS_SETTIMEOFDAY, [6]uintptr{badPtr, 0}},
		{"quotactl", unix.SYS_QUOTACTL, [6]uintptr{0, badPtr, 0, 0}},
		{"fanotify_init", unix.SYS_FANOTIFY_INIT, [6]uintptr{0xffff0000, 0}},
		{"ioperm", unix.SYS_IOPERM, [6]uintptr{0x80, 1, 0}},
		{"personality", unix.SYS_PERSONALITY, [6]uintptr{0x0400000 /*READ_IMPLIES_EXEC*/}},
		{"unshare", unix.SYS_UNSHARE, [6]uintptr{unix.CLONE_NEWNS}},
		{"clone3", unix.SYS_CLONE3, [6]uintptr{badPtr, 88}},
	}
}

func probeSyscalls([]string) {
	runtime.LockOSThread() // unshare affects this thread only; it is never unlocked, so it dies with the probe
	for _, c := range sweep() {
		r, _, e := unix.RawSyscall6(c.nr, c.a[0], c.a[1], c.a[2], c.a[3], c.a[4], c.a[5])
		if e == 0 && c.name == "personality" {
			unix.RawSyscall(unix.SYS_PERSONALITY, 0, 0, 0)
		}
		if e == 0 && (c.name == "userfaultfd" || c.name == "fanotify_init") {
			unix.Close(int(r))
		}
		fmt.Printf("SYS %s %d %s\n", c.name, int(r), errnoName(e))
	}
}

func errnoName(e syscall.Errno) string {
	if e == 0 {
		return "0"
	}
	return unix.ErrnoName(e)
}

// inject: ptrace attach, /proc/PID/mem, process_vm_readv and
// pidfd_getfd against every pid given ("all" = every visible pid but
// this probe).
func probeInject(args []string) {
	runtime.LockOSThread()
	var pids []int
	for _, a := range args {
		if a == "all" {
			ents, _ := os.ReadDir("/proc")
			for _, e := range ents {
				if p, err := strconv.Atoi(e.Name()); err == nil && p != os.Getpid() {
					pids = append(pids, p)
				}
			}
			continue
		}
		p, _ := strconv.Atoi(a)
		pids = append(pids, p)
	}
	for _, pid := range pids {
		comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		who := fmt.Sprintf("pid %d (%s)", pid, strings.TrimSpace(string(comm)))
		err := unix.PtraceSeize(pid)
		if err == nil {
			_ = unix.PtraceInterrupt(pid)
			var ws unix.WaitStatus
			_, _ = unix.Wait4(pid, &ws, unix.WALL, nil)
			_ = unix.PtraceDetach(pid)
		}
		report("ptrace-seize "+who, err)
		f, err := os.OpenFile(fmt.Sprintf("/proc/%d/mem", pid), os.O_RDWR, 0)
		if err == nil {
			f.Close()
		}
		report("proc-mem-rw "+who, err)
		buf := make([]byte, 8)
		local := []unix.Iovec{{Base: &buf[0], Len: 8}}
		auxv, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)) // any readable address would do; use the stack start field
		var addr uintptr
		if fs := strings.Fields(string(auxv)); len(fs) > 27 {
			v, _ := strconv.ParseUint(fs[27], 10, 64)
			addr = uintptr(v)
		}
		if addr == 0 {
			addr = 0x400000
		}
		remote := []unix.RemoteIovec{{Base: addr, Len: 8}}
		_, err = unix.ProcessVMReadv(pid, local, remote, 0)
		if errors.Is(err, unix.EFAULT) { // reached the target's memory map
			err = nil
		}
		report("process_vm_readv "+who, err)
		pfd, err := unix.PidfdOpen(pid, 0)
		if err == nil {
			fd, gerr := unix.PidfdGetfd(pfd, 0, 0)
			if gerr == nil {
				unix.Close(fd)
			}
			report("pidfd_getfd "+who, gerr)
			unix.Close(pfd)
		}
	}
}

// connect NET ADDR [PAYLOAD]: tcp, udp, unix (path) or abstract (name,
// no @). Sends PAYLOAD (controls send the control token), half-closes,
// and prints what the other end answered.
func probeConnect(args []string) {
	if len(args) < 2 {
		return
	}
	network, addr := args[0], args[1]
	payload := "cordon-redteam-probe"
	if len(args) > 2 {
		payload = args[2]
	}
	switch network {
	case "abstract":
		network, addr = "unix", "@"+addr
	case "tcp", "udp", "unix", "tcp6", "udp6":
	default:
		return
	}
	c, err := net.DialTimeout(network, addr, 2*time.Second)
	if err != nil {
		report("connect "+network+" "+addr, err)
		return
	}
	defer c.Close()
	_, err = c.Write([]byte(payload + "\n"))
	report("send "+network+" "+addr, err)
	if cw, ok := c.(interface{ CloseWrite() error }); ok && err == nil && !strings.HasPrefix(network, "udp") {
		_ = cw.CloseWrite()
		_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
		if b, _ := io.ReadAll(io.LimitReader(c, 512)); len(b) > 0 {
			fmt.Printf("reply %q\n", b)
		}
	}
}

func probeRawSock([]string) {
	for _, s := range []struct {
		what        string
		dom, typ, p int
	}{
		{"raw-icmp", unix.AF_INET, unix.SOCK_RAW, unix.IPPROTO_ICMP},
		{"raw-ipv6", unix.AF_INET6, unix.SOCK_RAW, unix.IPPROTO_ICMPV6},
		{"packet", unix.AF_PACKET, unix.SOCK_RAW, 0x0300},
	} {
		fd, err := unix.Socket(s.dom, s.typ, s.p)
		if fd >= 0 {
			unix.Close(fd)
		}
		report("socket "+s.what, err)
	}
}

// mount DIR [private]: with "private" (the host control) the probe first
// enters a new, private mount namespace of its own, so nothing it mounts
// is seen by the host.
func probeMount(args []string) {
	runtime.LockOSThread() // never unlocked: the thread's namespaces die with the probe
	if len(args) < 1 {
		return
	}
	dir := args[0]
	if len(args) > 1 && args[1] == "private" {
		if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
			report("unshare-private", err)
			return
		}
		if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
			report("make-private", err)
			return
		}
	}
	_ = os.MkdirAll(dir, 0o755)
	report("mount-tmpfs "+dir, unix.Mount("rt", dir, "tmpfs", 0, "size=64k"))
	_ = unix.Unmount(dir, unix.MNT_DETACH)
	report("mount-cgroup2 "+dir, unix.Mount("rt", dir, "cgroup2", 0, ""))
	_ = unix.Unmount(dir, unix.MNT_DETACH)
	report("mount-proc "+dir, unix.Mount("proc", dir, "proc", 0, ""))
	_ = unix.Unmount(dir, unix.MNT_DETACH)
	report("umount-proc", unix.Unmount("/proc", unix.MNT_DETACH|unix.MNT_EXPIRE))
	fd, err := unix.OpenTree(unix.AT_FDCWD, "/", unix.OPEN_TREE_CLONE)
	if err == nil {
		unix.Close(fd)
	}
	report("open_tree-clone", err)
	fd, err = unix.Fsopen("tmpfs", 0)
	if err == nil {
		unix.Close(fd)
	}
	report("fsopen", err)
	report("remount-rw /usr", unix.Mount("", "/usr", "", unix.MS_REMOUNT|unix.MS_BIND, ""))
}

// openw FILE...: open each for writing, never write.
func probeOpenWrite(args []string) {
	for _, f := range args {
		fd, err := unix.Open(f, unix.O_WRONLY|unix.O_CLOEXEC, 0)
		if err == nil {
			unix.Close(fd)
		}
		report("open-write "+f, err)
	}
}

// dev DIR [walk]: mknod /dev/mem (c 1 1) and a whiteout (c 0 0, what a
// user namespace may make) in DIR; with walk, open every device node of
// /dev read-write but the minimal set. Never walk the host's /dev: some
// devices act on open (a watchdog arms, a tape rewinds).
func probeDev(args []string) {
	if len(args) < 1 {
		return
	}
	node := filepath.Join(args[0], "rt-mem")
	err := unix.Mknod(node, unix.S_IFCHR|0o600, int(unix.Mkdev(1, 1)))
	if err == nil {
		f, oerr := os.OpenFile(node, os.O_RDONLY, 0)
		if oerr == nil {
			f.Close()
		}
		report("open-mknod-mem", oerr)
		os.Remove(node)
	}
	report("mknod c 1 1", err)
	wh := filepath.Join(args[0], "rt-whiteout")
	err = unix.Mknod(wh, unix.S_IFCHR|0o600, 0)
	if err == nil {
		os.Remove(wh)
	}
	report("mknod c 0 0 (whiteout)", err)
	if len(args) < 2 || args[1] != "walk" {
		return
	}
	allowed := map[string]bool{"null": true, "zero": true, "full": true, "random": true, "urandom": true, "tty": true, "ptmx": true, "pts/ptmx": true}
	_ = filepath.WalkDir("/dev", func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		rel := strings.TrimPrefix(p, "/dev/")
		if d.Type()&os.ModeDevice == 0 || allowed[rel] || strings.HasPrefix(rel, "watchdog") {
			return nil
		}
		fd, oerr := unix.Open(p, unix.O_RDWR|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
		if oerr == nil {
			unix.Close(fd)
		}
		report("open-rw "+p, oerr)
		return nil
	})
}

// tiocsti: inject a byte into a pty of the probe's own (never the
// caller's terminal), with the plain request and the high-bit variant
// that bypassed 64-bit seccomp compares (CVE-2019-10063). The pty is the
// controlling terminal of a child in a new session (what the kernel asks
// of an unprivileged caller while dev.tty.legacy_tiocsti is 1); the
// child does the ioctls on it.
func probeTIOCSTI(args []string) {
	if len(args) > 0 && args[0] == "child" {
		c := byte('x')
		for _, req := range []uintptr{unix.TIOCSTI, unix.TIOCSTI | 1<<32} {
			_, _, e := unix.Syscall(unix.SYS_IOCTL, 0, req, uintptr(unsafe.Pointer(&c)))
			report(fmt.Sprintf("TIOCSTI %#x", req), errnoErr(e))
		}
		_, _, e := unix.Syscall(unix.SYS_IOCTL, 0, unix.TIOCLINUX, uintptr(unsafe.Pointer(&[]byte{3}[0])))
		if errors.Is(e, unix.EINVAL) || errors.Is(e, unix.ENOTTY) { // reached the tty layer, not a console
			fmt.Printf("reached TIOCLINUX: %v\n", e)
		} else {
			report("TIOCLINUX", errnoErr(e))
		}
		return
	}
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		report("open-ptmx", err)
		return
	}
	defer m.Close()
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		report("unlockpt", err)
		return
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		report("ptsname", err)
		return
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		report("open-pts", err)
		return
	}
	defer s.Close()
	self, err := os.Executable()
	if err != nil {
		report("executable", err)
		return
	}
	cmd := exec.Command(self, "redteam", "probe", "tiocsti", "child")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = s, os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := cmd.Run(); err != nil {
		report("start the injecting child", err)
	}
}

// setns PID: open PID's namespaces and join them.
func probeSetns(args []string) {
	runtime.LockOSThread() // never unlocked
	pid := "1"
	if len(args) > 0 {
		pid = args[0]
	}
	for _, ns := range []string{"net", "uts", "ipc", "mnt", "pid", "cgroup", "user"} {
		fd, err := unix.Open("/proc/"+pid+"/ns/"+ns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			report("open-ns "+ns, err)
			continue
		}
		report("setns "+ns, unix.Setns(fd, 0))
		unix.Close(fd)
	}
}

// kill PID...: signal 0, then SIGSTOP and SIGCONT.
func probeKill(args []string) {
	for _, a := range args {
		pid, _ := strconv.Atoi(a)
		report("kill-0 "+a, unix.Kill(pid, 0))
		err := unix.Kill(pid, unix.SIGSTOP)
		if err == nil {
			time.Sleep(50 * time.Millisecond)
			_ = unix.Kill(pid, unix.SIGCONT)
		}
		report("kill-STOP "+a, err)
	}
}

// setuid BIN: start a setuid binary that waits on stdin and read its
// effective uid from /proc.
func probeSetuid(args []string) {
	for _, bin := range args {
		cmd := exec.Command(bin)
		stdin, _ := cmd.StdinPipe()
		cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
		if err := cmd.Start(); err != nil {
			report("start "+bin, err)
			continue
		}
		euid := "?"
		for i := 0; i < 40; i++ {
			time.Sleep(25 * time.Millisecond)
			b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", cmd.Process.Pid))
			if err != nil {
				break
			}
			for _, l := range strings.Split(string(b), "\n") {
				if f := strings.Fields(l); len(f) >= 3 && f[0] == "Uid:" {
					euid = f[2]
				}
			}
			if euid != "?" && euid != strconv.Itoa(os.Geteuid()) {
				break
			}
		}
		_ = cmd.Process.Kill()
		stdin.Close()
		_ = cmd.Wait()
		if euid != "?" && euid != strconv.Itoa(os.Geteuid()) {
			fmt.Printf("OK setuid %s euid=%s (probe euid %d)\n", bin, euid, os.Geteuid())
		} else {
			fmt.Printf("no setuid %s: euid=%s\n", bin, euid)
		}
	}
}

// clonens: start /bin/true in new namespaces through clone(2) flags.
func probeCloneNS([]string) {
	for _, f := range []struct {
		what  string
		flags uintptr
	}{
		{"user", unix.CLONE_NEWUSER},
		{"user+mnt+net", unix.CLONE_NEWUSER | unix.CLONE_NEWNS | unix.CLONE_NEWNET},
		{"pid", unix.CLONE_NEWPID},
		{"cgroup", unix.CLONE_NEWCGROUP},
	} {
		cmd := exec.Command("/bin/true")
		cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: f.flags}
		report("clone-ns "+f.what, cmd.Run())
	}
}

// fds HOLD: open /dev/null until refused, hold for HOLD.
func probeFDs(args []string) {
	var fds []int
	var err error
	for len(fds) < 1<<22 {
		var fd int
		fd, err = unix.Open("/dev/null", unix.O_RDONLY, 0)
		if err != nil {
			break
		}
		fds = append(fds, fd)
	}
	fmt.Printf("fds %d stopped by %v\n", len(fds), err)
	hold(args)
}

func hold(args []string) {
	if len(args) > 0 {
		d, _ := time.ParseDuration(args[0])
		time.Sleep(d)
	}
}

// inotify HOLD: create inotify instances until refused, hold.
func probeInotify(args []string) {
	n := 0
	var err error
	for n < 1<<20 {
		if _, err = unix.InotifyInit1(0); err != nil {
			break
		}
		n++
	}
	fmt.Printf("inotify %d stopped by %v\n", n, err)
	hold(args)
}

// alloc: touch memory until the allocation or the process dies.
func probeAlloc(args []string) {
	var keep [][]byte
	total := 0
	for total < 64<<30 {
		b, err := unix.Mmap(-1, 0, 64<<20, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
		if err != nil {
			fmt.Printf("alloc stopped at %d MiB by %v\n", total>>20, err)
			break
		}
		for i := 0; i < len(b); i += 4096 {
			b[i] = 1
		}
		keep = append(keep, b)
		total += len(b)
		fmt.Printf("alloc %d MiB\n", total>>20)
	}
	hold(args)
}

// burn DURATION: spin every CPU, ignoring SIGTERM.
func probeBurn(args []string) {
	signalIgnore()
	d := 5 * time.Second
	if len(args) > 0 {
		d, _ = time.ParseDuration(args[0])
	}
	end := time.Now().Add(d)
	for i := 0; i < 4*runtime.NumCPU(); i++ {
		go func() {
			for time.Now().Before(end) {
			}
		}()
	}
	time.Sleep(d)
}

func signalIgnore() {
	for _, s := range []syscall.Signal{syscall.SIGTERM, syscall.SIGHUP, syscall.SIGINT} {
		sigIgnore(s)
	}
}

// listen NET ADDR LOG: accept, append what arrives to LOG.
func probeListen(args []string) {
	if len(args) != 3 {
		return
	}
	network, addr := args[0], args[1]
	if network == "abstract" {
		network, addr = "unix", "@"+addr
	}
	l, err := net.Listen(network, addr)
	if err != nil {
		report("listen", err)
		return
	}
	fmt.Println("OK listening", l.Addr())
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		b, _ := io.ReadAll(io.LimitReader(c, 4096))
		c.Close()
		f, err := os.OpenFile(args[2], os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err == nil {
			fmt.Fprintf(f, "GOT %q\n", b)
			f.Close()
		}
	}
}

// handle PATH: name_to_handle_at then open_by_handle_at (Shocker).
func probeHandle(args []string) {
	p := "/etc/hostname"
	if len(args) > 0 {
		p = args[0]
	}
	h, mnt, err := unix.NameToHandleAt(unix.AT_FDCWD, p, 0)
	report("name_to_handle_at "+p, err)
	if err != nil {
		return
	}
	mfd, err := unix.Open("/", unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return
	}
	_ = mnt
	fd, err := unix.OpenByHandleAt(mfd, h, unix.O_RDONLY)
	if err == nil {
		unix.Close(fd)
	}
	report("open_by_handle_at", err)
}

// procfd PID: open every descriptor of PID through /proc/PID/fd.
func probeProcFD(args []string) {
	pid := "1"
	if len(args) > 0 {
		pid = args[0]
	}
	dir := "/proc/" + pid + "/fd"
	ents, err := os.ReadDir(dir)
	if err != nil {
		report("list "+dir, err)
		return
	}
	for _, e := range ents {
		p := dir + "/" + e.Name()
		t, lerr := os.Readlink(p)
		if lerr == nil {
			fmt.Printf("OK readlink %s -> %s\n", p, t)
		}
		fd, oerr := unix.Open(p, unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
		if errors.Is(oerr, unix.EISDIR) || errors.Is(oerr, unix.ENXIO) {
			fd, oerr = unix.Open(p, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
		}
		if oerr == nil {
			unix.Close(fd)
		}
		report("open "+p, oerr)
	}
}

// linkout SRC DST: hardlink SRC (outside the workspace) to DST.
func probeLinkOut(args []string) {
	if len(args) != 2 {
		return
	}
	report("link "+args[0], os.Link(args[0], args[1]))
}

// chrootesc: the classic chroot escape (chroot into a subdir, then walk
// up with ..); chroot is denied, so nothing should move.
func probeChrootEscape(args []string) {
	runtime.LockOSThread()
	d := "/tmp/rt-chroot"
	if len(args) > 0 {
		d = args[0]
	}
	_ = os.MkdirAll(d, 0o755)
	report("chroot", unix.Chroot(d))
}

// ipcKey names the SysV objects of the ipc probe; mqName its POSIX
// message queue.
const (
	ipcKey = 0x52edc0de
	mqName = "cordon-redteam"
)

// ipc put SECRET | ipc get: leave SECRET in a SysV shared memory segment,
// a SysV message queue, a POSIX message queue and the user keyring (all
// outlive the process), or look for what is there.
func probeIPC(args []string) {
	if len(args) == 0 {
		return
	}
	switch args[0] {
	case "put":
		if len(args) < 2 {
			return
		}
		secret := []byte(args[1])
		id, err := unix.SysvShmGet(ipcKey, 4096, unix.IPC_CREAT|0o666)
		if err == nil {
			var b []byte
			if b, err = unix.SysvShmAttach(id, 0, 0); err == nil {
				copy(b, secret)
				_ = unix.SysvShmDetach(b)
			}
		}
		report("shm put", err)
		q, _, e := unix.Syscall(unix.SYS_MSGGET, ipcKey, unix.IPC_CREAT|0o666, 0)
		if e == 0 {
			msg := append([]byte{1, 0, 0, 0, 0, 0, 0, 0}, secret...) // mtype 1
			_, _, e = unix.Syscall6(unix.SYS_MSGSND, q, uintptr(unsafe.Pointer(&msg[0])), uintptr(len(secret)), unix.IPC_NOWAIT, 0, 0)
		}
		report("msg put", errnoErr(e))
		name := append([]byte(mqName), 0)
		mq, _, e := unix.Syscall6(unix.SYS_MQ_OPEN, uintptr(unsafe.Pointer(&name[0])), unix.O_CREAT|unix.O_RDWR, 0o666, 0, 0, 0)
		if e == 0 {
			_, _, e = unix.Syscall6(unix.SYS_MQ_TIMEDSEND, mq, uintptr(unsafe.Pointer(&secret[0])), uintptr(len(secret)), 0, 0, 0)
			unix.Close(int(mq))
		}
		report("mq put", errnoErr(e))
		_, err = unix.AddKey("user", "cordon-redteam-ipc", secret, unix.KEY_SPEC_USER_KEYRING)
		report("key put", err)
	case "get":
		if id, err := unix.SysvShmGet(ipcKey, 0, 0); err == nil {
			if b, err := unix.SysvShmAttach(id, 0, unix.SHM_RDONLY); err == nil {
				fmt.Printf("shm %q\n", strings.TrimRight(string(b[:64]), "\x00"))
				_ = unix.SysvShmDetach(b)
			}
		}
		if q, _, e := unix.Syscall(unix.SYS_MSGGET, ipcKey, 0, 0); e == 0 {
			buf := make([]byte, 8+256)
			if n, _, e := unix.Syscall6(unix.SYS_MSGRCV, q, uintptr(unsafe.Pointer(&buf[0])), 256, 0, unix.IPC_NOWAIT, 0); e == 0 {
				fmt.Printf("msg %q\n", buf[8:8+n])
			}
		}
		name := append([]byte(mqName), 0)
		if mq, _, e := unix.Syscall6(unix.SYS_MQ_OPEN, uintptr(unsafe.Pointer(&name[0])), unix.O_RDONLY|unix.O_NONBLOCK, 0, 0, 0, 0); e == 0 {
			buf := make([]byte, 8192)
			if n, _, e := unix.Syscall6(unix.SYS_MQ_TIMEDRECEIVE, mq, uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)), 0, 0, 0); e == 0 {
				fmt.Printf("mq %q\n", buf[:n])
			}
			unix.Close(int(mq))
		}
		if id, err := unix.KeyctlSearch(unix.KEY_SPEC_USER_KEYRING, "user", "cordon-redteam-ipc", 0); err == nil {
			buf := make([]byte, 256)
			if n, err := unix.KeyctlBuffer(unix.KEYCTL_READ, id, buf, 0); err == nil {
				fmt.Printf("key %q\n", buf[:min(n, len(buf))])
			}
		}
	}
}

func errnoErr(e syscall.Errno) error {
	if e == 0 {
		return nil
	}
	return e
}

// exe PID...: the runc escape of CVE-2019-5736 without the write: open
// /proc/PID/exe (O_PATH), then reopen it for writing through
// /proc/self/fd. ETXTBSY means the permission check passed and only the
// running program stood in the way. Never writes. "all": every pid but
// this one.
func probeExe(args []string) {
	var pids []string
	for _, a := range args {
		if a != "all" {
			pids = append(pids, a)
			continue
		}
		ents, _ := os.ReadDir("/proc")
		for _, e := range ents {
			if p, err := strconv.Atoi(e.Name()); err == nil && p != os.Getpid() {
				pids = append(pids, e.Name())
			}
		}
	}
	for _, pid := range pids {
		target, _ := os.Readlink("/proc/" + pid + "/exe")
		fd, err := unix.Open("/proc/"+pid+"/exe", unix.O_PATH|unix.O_CLOEXEC, 0)
		if err != nil {
			report("open-path exe pid "+pid, err)
			continue
		}
		w, err := unix.Open(fmt.Sprintf("/proc/self/fd/%d", fd), unix.O_WRONLY|unix.O_CLOEXEC, 0)
		if err == nil {
			unix.Close(w)
		}
		if errors.Is(err, unix.ETXTBSY) {
			fmt.Printf("OK reopen-write exe pid %s (%s): ETXTBSY, writable once it exits\n", pid, target)
		} else {
			report(fmt.Sprintf("reopen-write exe pid %s (%s)", pid, target), err)
		}
		unix.Close(fd)
	}
}

// holdProbe DURATION: sleep (a process for controls to point at).
func holdProbe(args []string) { hold(args) }

// addaddr ADDR/BITS: add an address to lo through netlink.
func probeAddAddr(args []string) {
	if len(args) < 1 {
		return
	}
	p, err := netip.ParsePrefix(args[0])
	if err != nil {
		report("parse", err)
		return
	}
	report("rtnetlink add "+args[0], linux.AddAddress("lo", p))
}

// mkexec DIR: make set-user-ID and set-group-ID executables in DIR the
// ways a program can: open(O_CREAT) with the mode, and chmod after.
func probeMkexec(args []string) {
	if len(args) < 1 {
		return
	}
	self, err := os.ReadFile("/bin/true")
	if err != nil {
		report("read /bin/true", err)
		return
	}
	for _, m := range []struct {
		name string
		mode uint32
	}{{"suid-open", 0o4755}, {"sgid-open", 0o2755}} {
		p := filepath.Join(args[0], m.name)
		fd, err := unix.Open(p, unix.O_CREAT|unix.O_WRONLY|unix.O_TRUNC|unix.O_CLOEXEC, m.mode)
		if err == nil {
			_, err = unix.Write(fd, self)
			unix.Close(fd)
		}
		report("create "+m.name, err)
	}
	// openat2 keeps its mode in memory, out of a seccomp filter's reach.
	how := unix.OpenHow{Flags: unix.O_CREAT | unix.O_WRONLY | unix.O_TRUNC | unix.O_CLOEXEC, Mode: 0o6755}
	if fd, err := unix.Openat2(unix.AT_FDCWD, filepath.Join(args[0], "suid-openat2"), &how); err == nil {
		_, err = unix.Write(fd, self)
		unix.Close(fd)
		report("create suid-openat2", err)
	} else {
		report("create suid-openat2", err)
	}
	for _, m := range []struct {
		name string
		mode uint32
	}{{"suid-chmod", 0o4755}, {"sgid-chmod", 0o2755}, {"suid-fchmodat", 0o6755}} {
		p := filepath.Join(args[0], m.name)
		err := os.WriteFile(p, self, 0o755)
		if err == nil {
			if m.name == "suid-fchmodat" {
				err = unix.Fchmodat(unix.AT_FDCWD, p, m.mode, 0)
			} else {
				err = unix.Chmod(p, m.mode)
			}
		}
		report("chmod "+m.name, err)
	}
	// A file capability: security.capability v2 (root-relative) for
	// cap_setuid, what setcap writes.
	p := filepath.Join(args[0], "fcap")
	if err := os.WriteFile(p, self, 0o755); err == nil {
		v2 := []byte{0, 0, 0, 2, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
		report("setxattr security.capability", unix.Setxattr(p, "security.capability", v2, 0))
	}
}

// keyread DESC: find DESC in the user and session keyrings and read it.
func probeKeyRead(args []string) {
	if len(args) < 1 {
		return
	}
	for _, ring := range []int{unix.KEY_SPEC_USER_KEYRING, unix.KEY_SPEC_SESSION_KEYRING, unix.KEY_SPEC_PROCESS_KEYRING} {
		id, err := unix.KeyctlSearch(ring, "user", args[0], 0)
		if err != nil {
			report(fmt.Sprintf("keyctl search %d", ring), err)
			continue
		}
		buf := make([]byte, 256)
		n, err := unix.KeyctlBuffer(unix.KEYCTL_READ, id, buf, 0)
		if err == nil {
			fmt.Printf("OK key %q\n", buf[:min(n, len(buf))])
		} else {
			report("keyctl read", err)
		}
	}
}

// denyloop DURATION: make denied system calls (keyctl) as fast as the
// kernel returns them.
func probeDenyLoop(args []string) {
	d := 2 * time.Second
	if len(args) > 0 {
		d, _ = time.ParseDuration(args[0])
	}
	n := 0
	for end := time.Now().Add(d); time.Now().Before(end); n++ {
		unix.RawSyscall(unix.SYS_KEYCTL, 0, ^uintptr(2), 0)
	}
	fmt.Printf("denyloop %d calls\n", n)
}

// probeDgram sends a datagram to a pathname unix socket from a unix
// datagram socket made with socket(2) and from one of a socketpair(2):
// "dgram PATH [PAYLOAD]".
func probeDgram(args []string) {
	if len(args) < 1 {
		return
	}
	payload := []byte("cordon-redteam-probe")
	if len(args) > 1 {
		payload = []byte(args[1])
	}
	to := &unix.SockaddrUnix{Name: args[0]}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err == nil {
		err = unix.Sendto(fd, payload, 0, to)
		unix.Close(fd)
	}
	report("sendto from socket(AF_UNIX, SOCK_DGRAM) to "+args[0], err)
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err == nil {
		err = unix.Sendto(pair[0], payload, 0, to)
		unix.Close(pair[0])
		unix.Close(pair[1])
	}
	report("sendto from socketpair(AF_UNIX, SOCK_DGRAM) to "+args[0], err)
}

// probeUnixRace connects again and again through one sockaddr_un
// while another thread keeps rewriting it between a socket of the
// probe's own and the target: a supervisor that checks the address and
// then lets the kernel read it again connects to the target now and
// then. "unixrace OWN TARGET [PAYLOAD]"; each connection sends the
// payload.
func probeUnixRace(args []string) {
	if len(args) < 2 {
		return
	}
	payload := []byte("cordon-redteam-probe\n")
	if len(args) > 2 {
		payload = []byte(args[2] + "\n")
	}
	ln, err := listenDiscard("unix", args[0])
	if err != nil {
		report("listen "+args[0], err)
		return
	}
	defer ln.Close()
	enc := func(path string) (b [unix.SizeofSockaddrUnix]byte) {
		binary.NativeEndian.PutUint16(b[:], unix.AF_UNIX)
		copy(b[2:], path)
		return b
	}
	own, target := enc(args[0]), enc(args[1])
	buf := new([unix.SizeofSockaddrUnix]byte)
	*buf = own
	var stop atomic.Bool
	go func() {
		// Each address stays a few hundred nanoseconds, so that whole
		// copies of either are read, not only torn mixtures.
		for n := 0; !stop.Load(); n++ {
			if n%500 == 0 {
				if n%1000 == 0 {
					storeAddr(buf, &target)
				} else {
					storeAddr(buf, &own)
				}
			}
		}
	}()
	defer stop.Store(true)
	var ok, refused, hits int
	why := map[string]int{}
	// At least 3000 tries, then on until the first connection to the
	// target or 3 s: on a loaded host the flipping thread can sit
	// descheduled through a whole batch, which would make the host
	// control miss, and the attack gets the same tries as the control.
	deadline := time.Now().Add(3 * time.Second)
	for try := 0; try < 3000 || (hits == 0 && time.Now().Before(deadline)); try++ {
		fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			break
		}
		_, _, e := unix.Syscall(unix.SYS_CONNECT, uintptr(fd), uintptr(unsafe.Pointer(buf)), unix.SizeofSockaddrUnix)
		if e == 0 {
			ok++
			unix.Write(fd, payload)
			if sa, err := unix.Getpeername(fd); err == nil {
				if u, _ := sa.(*unix.SockaddrUnix); u != nil && u.Name == args[1] {
					hits++
				}
			}
		} else {
			refused++
			why[e.Error()]++
		}
		unix.Close(fd)
	}
	fmt.Printf("race: %d connected (%d to the target), %d refused %v\n", ok, hits, refused, why)
}

// storeAddr is a call, not an inlined store, so that the compiler keeps
// both of the flipping goroutine's stores.
//
//go:noinline
func storeAddr(dst, src *[unix.SizeofSockaddrUnix]byte) { *dst = *src }

// listenDiscard listens on addr and closes every connection it accepts,
// until the listener is closed: the probe's own end of a race.
func listenDiscard(network, addr string) (net.Listener, error) {
	ln, err := net.Listen(network, addr)
	if err != nil {
		return nil, err
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	return ln, nil
}
