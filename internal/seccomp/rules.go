package seccomp

import (
	"fmt"
	"strings"
	"sync"
)

// capPtrace is the cordon capability that lifts the ptrace-family denials.
const capPtrace = "proc.ptrace"

// denial is one syscall that the filter hands to the supervisor whatever its
// arguments. what completes the sentence "<name> tried to ...".
type denial struct {
	name       string
	what       string
	capability string
}

// denials is the unconditional deny set, grouped by why it is denied. A name
// that the native architecture does not have (iopl on arm64) is skipped.
var denials = []denial{
	// Mount table and root directory: the executor's mount namespace is the
	// sandbox's view of the filesystem.
	{name: "mount", what: "mount a filesystem"},
	{name: "umount2", what: "unmount a filesystem"},
	{name: "mount_setattr", what: "change the attributes of a mount"},
	{name: "move_mount", what: "move a mount"},
	{name: "open_tree", what: "open or clone a mount tree"},
	{name: "open_tree_attr", what: "clone a mount tree with new attributes"},
	{name: "fsopen", what: "create a filesystem context"},
	{name: "fsconfig", what: "configure a filesystem context"},
	{name: "fsmount", what: "create a mount from a filesystem context"},
	{name: "fspick", what: "reconfigure a mounted filesystem"},
	{name: "pivot_root", what: "change the root mount"},
	{name: "chroot", what: "change the root directory"},

	// Other processes' memory and descriptors.
	{name: "ptrace", what: "trace another process", capability: capPtrace},
	{name: "process_vm_readv", what: "read another process's memory", capability: capPtrace},
	{name: "process_vm_writev", what: "write another process's memory", capability: capPtrace},
	{name: "pidfd_getfd", what: "copy a file descriptor out of another process"},

	// Large kernel attack surface with no use in a tool call.
	{name: "bpf", what: "load or inspect eBPF programs and maps"},
	{name: "perf_event_open", what: "open a performance-monitoring event"},
	{name: "keyctl", what: "manipulate kernel keyrings"},
	{name: "add_key", what: "add a key to a kernel keyring"},
	{name: "request_key", what: "request a key from a kernel keyring"},
	{name: "userfaultfd", what: "create a userfaultfd"},
	{name: "io_uring_setup", what: "create an io_uring instance"},
	{name: "io_uring_enter", what: "submit io_uring work"},
	{name: "io_uring_register", what: "register resources with io_uring"},
	{name: "fanotify_init", what: "create a filesystem-wide fanotify group"},
	{name: "open_by_handle_at", what: "open a file by its filesystem handle"},
	{name: "name_to_handle_at", what: "get a filesystem handle for a path"},
	{name: "lookup_dcookie", what: "look up a directory-entry cookie"},
	{name: "uselib", what: "load a library with the obsolete uselib call"},
	{name: "nfsservctl", what: "control the kernel NFS server"},

	// Namespaces: joining one (creating one is checked on clone/unshare flags).
	{name: "setns", what: "join another namespace"},

	// Whole-machine state. These also need capabilities the sandbox does not
	// hold; denying them here is defence in depth and yields a clear event.
	{name: "kexec_load", what: "load a new kernel"},
	{name: "kexec_file_load", what: "load a new kernel"},
	{name: "init_module", what: "load a kernel module"},
	{name: "finit_module", what: "load a kernel module"},
	{name: "delete_module", what: "unload a kernel module"},
	{name: "acct", what: "switch process accounting"},
	{name: "swapon", what: "enable a swap area"},
	{name: "swapoff", what: "disable a swap area"},
	{name: "reboot", what: "reboot or halt the machine"},
	{name: "syslog", what: "read or control the kernel log"},
	{name: "iopl", what: "change the I/O privilege level"},
	{name: "ioperm", what: "change I/O port permissions"},
	{name: "vhangup", what: "hang up the terminal"},
	{name: "quotactl", what: "manipulate disk quotas"},
	{name: "quotactl_fd", what: "manipulate disk quotas"},
	{name: "settimeofday", what: "set the system clock"},
	{name: "clock_settime", what: "set a system clock"},
	{name: "clock_adjtime", what: "adjust a system clock"},
	{name: "adjtimex", what: "adjust the system clock"},
}

// Watched reports whether notifications of the syscall are checks rather
// than denials: connect is handed to the supervisor so that a connection
// to a non-loopback address, which the session's network namespace cannot
// route anyway, is refused with a reason and reported, and the Observed
// syscalls so that a write the view or Landlock will refuse is reported.
// The supervisor answers such a notification itself, with Continue or a
// refusal; Explain does not apply to it.
func Watched(nr int32) bool {
	n := Name(nr)
	return n == "connect" || observed[n]
}

// Observed reports whether the syscall is one of the writes by path that
// Options.ObserveWrites hands to the supervisor. Its notification is to
// be answered with Continue, always: it only reports.
func Observed(nr int32) bool { return observed[Name(nr)] }

// observed are the system calls that create, change or remove a file by
// its path, where a read-only mount (EROFS, or EACCES for a file of an
// id the session does not map) or Landlock can refuse them. open and
// openat are observed only with a write flag (openWriteFlags; the filter
// tests the flags argument); openat2 keeps its flags in memory the filter
// cannot read, so every openat2 is. Calls on a descriptor (ftruncate,
// fchmod, write) are not: the descriptor was opened for writing already,
// where the refusal would have been. Names an architecture lacks (open,
// creat, mkdir, ... on arm64) are skipped.
var observed = map[string]bool{
	"open": true, "openat": true, "openat2": true, "creat": true,
	"mkdir": true, "mkdirat": true, "mknod": true, "mknodat": true,
	"unlink": true, "unlinkat": true, "rmdir": true,
	"rename": true, "renameat": true, "renameat2": true,
	"link": true, "linkat": true, "symlink": true, "symlinkat": true,
	"truncate": true, "chmod": true, "fchmodat": true, "fchmodat2": true,
}

// afVsock is AF_VSOCK: vsock sockets reach the hypervisor (or the host of
// a VM) past the network namespace (not namespaced before Linux 7.0).
const afVsock = 40

// afUnix, sockDgram and sockTypeMask pick out unix datagram sockets. A
// datagram's destination is named by each send (sendto, sendmsg,
// sendmmsg) in memory the filter cannot read, and a pathname destination
// reaches a host daemon's socket through any directory the view shows,
// read-only or not: the supervisor makes every connect itself and checks
// it (see internal/supervisor), but it cannot make every send. So the
// session has no unix datagram sockets: socket and socketpair refuse
// them. Stream and seqpacket sockets ignore or refuse an address on send.
const (
	afUnix       = 1
	sockDgram    = 2
	sockTypeMask = 0xf
)

// setIDBits are S_ISUID and S_ISGID. A set-user-ID file a session leaves
// in its workspace (on the host, owned by the workspace's owner, root
// for a root-owned workspace) runs with that owner's rights for anyone
// on the host who executes it.
const setIDBits = 0o6000

// oCreat is O_CREAT (the same value on every architecture with a filter).
const oCreat = 0x40

// Forbidden reports whether a notification of an observed system call is
// nonetheless to be refused: one that gives a file the set-user-ID or
// set-group-ID bit (chmod, fchmodat, fchmodat2, and open, openat, creat,
// mknod, mknodat creating a file with such a mode). The mode is an
// argument, not memory, so the verdict cannot be raced. openat2 keeps its
// mode in memory, out of the filter's reach: see ExecutorOnly.
func Forbidden(n Notification) (Rule, bool) {
	name := Name(n.Nr)
	mode := func(i int) bool { return uint32(n.Args[i])&setIDBits != 0 }
	creat := func(i int) bool { return uint32(n.Args[i])&oCreat != 0 }
	var bad bool
	switch name {
	case "chmod", "creat":
		bad = mode(1)
	case "fchmodat", "fchmodat2", "mknodat":
		bad = mode(2)
	case "mknod":
		bad = mode(1)
	case "open":
		bad = creat(1) && mode(2)
	case "openat":
		bad = creat(2) && mode(3)
	}
	if !bad {
		return Rule{}, false
	}
	return Rule{Syscall: name, Rule: "seccomp.deny.setid_mode",
		Detail: name + " tried to give a file the set-user-ID or set-group-ID bit, which would let anyone on the host who runs it act as its owner"}, true
}

// ExecutorOnly reports whether the syscall is one that only the executor
// itself (cordon's own code: the file tools) may make. The supervisor
// answers it ENOSYS for every other process, as a kernel without it
// would, and callers fall back to the older call. openat2 is one: its
// flags and mode are in memory the filter cannot read, so a command
// could create a set-user-ID file through it (openat and creat are
// refused that in Forbidden), while the file tools need its
// RESOLVE_BENEATH.
func ExecutorOnly(nr int32) bool { return Name(nr) == "openat2" }

// openWriteFlags are the open(2) flags that make an open a write:
// O_WRONLY, O_RDWR, O_CREAT and O_TRUNC (the same values on every
// architecture with a filter here).
const openWriteFlags = 0x1 | 0x2 | 0x40 | 0x200

// Namespace flags shared by clone and unshare (include/uapi/linux/sched.h).
const (
	cloneNewTime   = 0x00000080 // unshare only: for clone this bit is in CSIGNAL
	cloneNewNS     = 0x00020000
	cloneNewCgroup = 0x02000000
	cloneNewUTS    = 0x04000000
	cloneNewIPC    = 0x08000000
	cloneNewUser   = 0x10000000
	cloneNewPID    = 0x20000000
	cloneNewNet    = 0x40000000

	// cloneNSMask is tested on clone's flags. CLONE_NEWTIME is left out: in
	// clone(2) the low byte is the exit signal (CSIGNAL), so 0x80 there means
	// a signal number, and clone(2) cannot create a time namespace anyway.
	cloneNSMask = cloneNewNS | cloneNewCgroup | cloneNewUTS | cloneNewIPC |
		cloneNewUser | cloneNewPID | cloneNewNet
	unshareNSMask = cloneNSMask | cloneNewTime
)

var nsFlagNames = []struct {
	bit  uint32
	name string
}{
	{cloneNewUser, "CLONE_NEWUSER"},
	{cloneNewNS, "CLONE_NEWNS"},
	{cloneNewPID, "CLONE_NEWPID"},
	{cloneNewNet, "CLONE_NEWNET"},
	{cloneNewIPC, "CLONE_NEWIPC"},
	{cloneNewUTS, "CLONE_NEWUTS"},
	{cloneNewCgroup, "CLONE_NEWCGROUP"},
	{cloneNewTime, "CLONE_NEWTIME"},
}

// Terminal ioctls that reach outside the sandbox through a shared tty.
const (
	ioctlTIOCSTI   = 0x5412 // push bytes into the terminal's input queue
	ioctlTIOCLINUX = 0x541C // virtual-console control, including selection paste
)

// allowedPersonalities are the personality(2) arguments the filter lets
// through: PER_LINUX, PER_LINUX32, UNAME26, UNAME26|PER_LINUX32 and the
// 0xffffffff query. Everything else (READ_IMPLIES_EXEC, ADDR_NO_RANDOMIZE,
// foreign execution domains) is denied.
var allowedPersonalities = []uint32{0x0, 0x8, 0x20000, 0x20008, 0xffffffff}

// archInfo is what the filter needs to know about one architecture. The
// native one is declared in arch_linux_<GOARCH>.go.
type archInfo struct {
	auditArch uint32           // AUDIT_ARCH_* the filter requires
	x32Bit    uint32           // if non-zero, numbers with this bit are killed
	bigEndian bool             // where the low word of a 64-bit argument lies
	enosys    uint32           // ENOSYS on this architecture
	names     map[int32]string // syscall number to name

	once    sync.Once
	numbers map[string]int32
}

// number returns the syscall number of name, if the architecture has it.
func (a *archInfo) number(name string) (int32, bool) {
	a.once.Do(func() {
		a.numbers = make(map[string]int32, len(a.names))
		for nr, n := range a.names {
			a.numbers[n] = nr
		}
	})
	nr, ok := a.numbers[name]
	return nr, ok
}

// Name returns the syscall name for a native-architecture number ("mount"),
// or "syscall_<nr>" when the number is unknown.
func Name(nr int32) string {
	if native != nil {
		if n, ok := native.names[nr]; ok {
			return n
		}
	}
	return fmt.Sprintf("syscall_%d", nr)
}

// Explain classifies a notification, by its syscall number and arguments,
// into the Rule that denied it. It does not read the target's memory.
func Explain(n Notification) Rule {
	name := Name(n.Nr)
	r := Rule{Syscall: name, Rule: "seccomp.deny." + name}
	switch name {
	case "unshare":
		if ns := uint32(n.Args[0]) & unshareNSMask; ns != 0 {
			r.Rule = "seccomp.deny.unshare_newns"
			r.Detail = "unshare with namespace flags " + nsFlags(ns)
			return r
		}
	case "clone":
		if ns := uint32(n.Args[0]) & cloneNSMask; ns != 0 {
			r.Rule = "seccomp.deny.clone_newns"
			r.Detail = "clone with namespace flags " + nsFlags(ns)
			return r
		}
	case "ioctl":
		// The kernel takes the command as unsigned int; so does the filter.
		switch uint32(n.Args[1]) {
		case ioctlTIOCSTI:
			r.Rule = "seccomp.deny.ioctl_tiocsti"
			r.Detail = "ioctl TIOCSTI tried to push input into a terminal"
			return r
		case ioctlTIOCLINUX:
			r.Rule = "seccomp.deny.ioctl_tioclinux"
			r.Detail = "ioctl TIOCLINUX tried to control a virtual console"
			return r
		}
	case "socket", "socketpair":
		switch family := uint32(n.Args[0]); {
		case family == afVsock:
			r.Rule = "seccomp.deny.socket_vsock"
			r.Detail = name + "(AF_VSOCK) tried to open a virtual-machine socket, which reaches the hypervisor past the session's network namespace"
			return r
		case family == afUnix && uint32(n.Args[1])&sockTypeMask == sockDgram:
			r.Rule = "seccomp.deny.unix_dgram"
			r.Detail = name + "(AF_UNIX, SOCK_DGRAM) tried to open a unix datagram socket: each of its sends can name a socket file anywhere in the session's view, host daemons' included, and cordon cannot check sends as it checks connects; use a stream or seqpacket socket"
			return r
		}
	case "fchmod":
		if uint32(n.Args[1])&setIDBits != 0 {
			r.Rule = "seccomp.deny.setid_mode"
			r.Detail = "fchmod tried to give a file the set-user-ID or set-group-ID bit, which would let anyone on the host who runs it act as its owner"
			return r
		}
	case "personality":
		r.Detail = fmt.Sprintf("personality 0x%x tried to set an execution domain or flags other than the default, PER_LINUX32 and UNAME26", uint32(n.Args[0]))
		return r
	}
	for _, d := range denials {
		if d.name == name {
			r.Capability = d.capability
			r.Detail = name + " tried to " + d.what
			return r
		}
	}
	r.Detail = name + " is not permitted in the sandbox"
	return r
}

// nsFlags names the namespace bits set in flags, "CLONE_NEWUSER|CLONE_NEWNS".
func nsFlags(flags uint32) string {
	var names []string
	for _, f := range nsFlagNames {
		if flags&f.bit != 0 {
			names = append(names, f.name)
		}
	}
	return strings.Join(names, "|")
}
