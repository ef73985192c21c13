//go:build linux && (amd64 || arm64)

package seccomp

import (
	"encoding/binary"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"testing"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// specDenied is the unconditional deny set as the design states it, kept
// apart from the package's own table so that dropping a name there fails
// here. Names the native architecture lacks are skipped (see resolve).
var specDenied = []string{
	"mount", "umount2", "mount_setattr", "move_mount", "open_tree", "open_tree_attr",
	"fsopen", "fsconfig", "fsmount", "fspick", "pivot_root", "chroot",
	"bpf", "perf_event_open", "keyctl", "add_key", "request_key", "userfaultfd",
	"io_uring_setup", "io_uring_enter", "io_uring_register",
	"kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module",
	"setns", "acct", "swapon", "swapoff", "reboot", "open_by_handle_at", "name_to_handle_at",
	"syslog", "lookup_dcookie", "iopl", "ioperm", "uselib", "vhangup", "quotactl", "quotactl_fd",
	"nfsservctl", "settimeofday", "clock_settime", "clock_adjtime", "adjtimex",
	"fanotify_init", "pidfd_getfd",
}

// specPtrace is denied unless Options.AllowPtrace.
var specPtrace = []string{"ptrace", "process_vm_readv", "process_vm_writev"}

// specWatched are handed to the supervisor to check, whatever the options.
var specWatched = []string{"connect"}

// specObserved are handed to the supervisor, which only reports, with
// Options.ObserveWrites (open and openat only with a write flag).
var specObserved = []string{
	"open", "openat", "openat2", "creat", "mkdir", "mkdirat", "mknod", "mknodat",
	"unlink", "unlinkat", "rmdir", "rename", "renameat", "renameat2",
	"link", "linkat", "symlink", "symlinkat", "truncate", "chmod", "fchmodat", "fchmodat2",
}

// amd64Only are spec names that arm64 does not have.
var amd64Only = map[string]bool{
	"iopl": true, "ioperm": true, "uselib": true,
	"open": true, "creat": true, "mkdir": true, "mknod": true, "unlink": true, "rmdir": true,
	"rename": true, "link": true, "symlink": true, "chmod": true,
}

func resolve(t testing.TB, name string) (int32, bool) {
	t.Helper()
	nr, ok := native.number(name)
	if !ok && !(runtime.GOARCH != "amd64" && amd64Only[name]) {
		t.Fatalf("no syscall number for %q on %s", name, runtime.GOARCH)
	}
	return nr, ok
}

// call is one seccomp_data.
type call struct {
	arch uint32
	nr   int32
	ip   uint64
	args [6]uint64
}

// encode lays c out for the x/net/bpf VM. The kernel loads each 32-bit word
// of seccomp_data in host byte order, the VM always loads big-endian (network
// order), so each word is stored big-endian at the offset where the host
// struct has it. For a 64-bit field on a little-endian host the low word is
// at the lower offset; on a big-endian host the high word is.
func encode(c call) []byte {
	b := make([]byte, 64)
	put := func(off int, v uint32) { binary.BigEndian.PutUint32(b[off:], v) }
	put64 := func(off int, v uint64) {
		lo, hi := uint32(v), uint32(v>>32)
		if native.bigEndian {
			lo, hi = hi, lo
		}
		put(off, lo)
		put(off+4, hi)
	}
	put(0, uint32(c.nr))
	put(4, c.arch)
	put64(8, c.ip)
	for i, a := range c.args {
		put64(16+8*i, a)
	}
	return b
}

type filterVM struct {
	vm *bpf.VM
}

// newVM builds the filter and loads the exact bytes Build returned into the
// VM, so the test exercises the assembled program rather than the
// instruction list it came from.
func newVM(t testing.TB, opts Options) filterVM {
	t.Helper()
	filter, err := Build(opts)
	if err != nil {
		t.Fatalf("Build(%+v): %v", opts, err)
	}
	insns := make([]bpf.Instruction, len(filter))
	for i, f := range filter {
		insns[i] = bpf.RawInstruction{Op: f.Code, Jt: f.Jt, Jf: f.Jf, K: f.K}.Disassemble()
		if _, raw := insns[i].(bpf.RawInstruction); raw {
			t.Fatalf("instruction %d (%+v) does not disassemble", i, f)
		}
	}
	vm, err := bpf.NewVM(insns)
	if err != nil {
		t.Fatalf("bpf.NewVM: %v", err)
	}
	return filterVM{vm}
}

// run returns the filter's verdict. The VM returns the 32-bit return
// constant as an int; on 64-bit Go that is exact, and converting back to
// uint32 restores it on 32-bit Go too.
func (f filterVM) run(t testing.TB, c call) uint32 {
	t.Helper()
	v, err := f.vm.Run(encode(c))
	if err != nil {
		t.Fatalf("VM run on %+v: %v", c, err)
	}
	return uint32(v)
}

func native64(nr int32, args ...uint64) call {
	c := call{arch: native.auditArch, nr: nr, ip: 0x7fff_1234_5678}
	copy(c.args[:], args)
	return c
}

var (
	allow  = uint32(unix.SECCOMP_RET_ALLOW)
	notify = uint32(unix.SECCOMP_RET_USER_NOTIF)
	kill   = uint32(unix.SECCOMP_RET_KILL_PROCESS)
	enosys = uint32(unix.SECCOMP_RET_ERRNO) | uint32(unix.ENOSYS)
)

func verdictName(v uint32) string {
	switch v {
	case allow:
		return "ALLOW"
	case notify:
		return "USER_NOTIF"
	case kill:
		return "KILL_PROCESS"
	case enosys:
		return "ERRNO(ENOSYS)"
	}
	return fmt.Sprintf("%#x", v)
}

func TestReturnConstants(t *testing.T) {
	for _, c := range []struct {
		name      string
		got, want uint32
	}{
		{"ALLOW", retAllow, unix.SECCOMP_RET_ALLOW},
		{"USER_NOTIF", retUserNotif, unix.SECCOMP_RET_USER_NOTIF},
		{"KILL_PROCESS", retKillProcess, unix.SECCOMP_RET_KILL_PROCESS},
		{"ERRNO", retErrno, unix.SECCOMP_RET_ERRNO},
		{"ENOSYS", native.enosys, uint32(unix.ENOSYS)},
	} {
		if c.got != c.want {
			t.Errorf("%s = %#x, want %#x", c.name, c.got, c.want)
		}
	}
	// The package's deny table must cover the design's list exactly.
	want := map[string]bool{}
	for _, n := range append(append([]string{}, specDenied...), specPtrace...) {
		want[n] = true
	}
	for _, d := range denials {
		if !want[d.name] {
			t.Errorf("denials has %q, which the design does not list", d.name)
		}
		delete(want, d.name)
	}
	for n := range want {
		t.Errorf("denials lacks %q", n)
	}
}

func TestName(t *testing.T) {
	for nr, want := range map[int32]string{
		unix.SYS_MOUNT: "mount", unix.SYS_READ: "read", unix.SYS_CLONE3: "clone3",
		unix.SYS_OPEN_TREE_ATTR: "open_tree_attr", 99999: "syscall_99999", -1: "syscall_-1",
	} {
		if got := Name(nr); got != want {
			t.Errorf("Name(%d) = %q, want %q", nr, got, want)
		}
	}
}

func TestFilterDeniedSet(t *testing.T) {
	vm := newVM(t, Options{})
	vmPtrace := newVM(t, Options{AllowPtrace: true})
	for _, name := range specDenied {
		nr, ok := resolve(t, name)
		if !ok {
			continue
		}
		for _, f := range []filterVM{vm, vmPtrace} {
			if got := f.run(t, native64(nr)); got != notify {
				t.Errorf("%s (%d): %s, want USER_NOTIF", name, nr, verdictName(got))
			}
		}
	}
	for _, name := range specWatched {
		nr, _ := resolve(t, name)
		if !Watched(nr) {
			t.Errorf("%s: Watched is false", name)
		}
		for _, f := range []filterVM{vm, vmPtrace} {
			if got := f.run(t, native64(nr, 3, 0x7f0000001000, 16)); got != notify {
				t.Errorf("%s (%d): %s, want USER_NOTIF", name, nr, verdictName(got))
			}
		}
	}
	if nr, _ := resolve(t, "mount"); Watched(nr) {
		t.Error("mount: Watched is true; a denial would be let through")
	}
	for _, name := range specPtrace {
		nr, _ := resolve(t, name)
		if got := vm.run(t, native64(nr)); got != notify {
			t.Errorf("%s without AllowPtrace: %s, want USER_NOTIF", name, verdictName(got))
		}
		if got := vmPtrace.run(t, native64(nr)); got != allow {
			t.Errorf("%s with AllowPtrace: %s, want ALLOW", name, verdictName(got))
		}
	}
}

func TestFilterCases(t *testing.T) {
	const (
		cloneVM      = 0x100
		cloneFS      = 0x200
		cloneFiles   = 0x400
		cloneSighand = 0x800
		clonePidfd   = 0x1000
		cloneVfork   = 0x4000
		cloneThread  = 0x10000
		sigchld      = 17
		tcgets       = 0x5401
	)
	vm := newVM(t, Options{})
	cases := []struct {
		name string
		c    call
		want uint32
	}{
		{"read", native64(unix.SYS_READ, 0, 0, 0), allow},
		{"write", native64(unix.SYS_WRITE, 1, 0, 5), allow},
		{"openat", native64(unix.SYS_OPENAT, ^uint64(99), 0, 0), allow},
		{"execve", native64(unix.SYS_EXECVE), allow},
		{"getpid", native64(unix.SYS_GETPID), allow},
		{"clock_gettime", native64(unix.SYS_CLOCK_GETTIME), allow},
		{"kcmp", native64(unix.SYS_KCMP), allow},
		{"clone fork", native64(unix.SYS_CLONE, sigchld), allow},
		{"clone thread", native64(unix.SYS_CLONE, cloneVM|cloneFS|cloneFiles|cloneSighand|cloneThread), allow},
		{"clone vfork pidfd", native64(unix.SYS_CLONE, cloneVM|cloneVfork|clonePidfd|sigchld), allow},
		{"clone exit signal 0x80 is not CLONE_NEWTIME", native64(unix.SYS_CLONE, cloneNewTime), allow},
		{"clone high word ignored by kernel", native64(unix.SYS_CLONE, 0xffffffff_00000000|sigchld), allow},
		{"clone CLONE_NEWUSER", native64(unix.SYS_CLONE, cloneNewUser|sigchld), notify},
		{"clone CLONE_NEWNS", native64(unix.SYS_CLONE, cloneNewNS), notify},
		{"clone CLONE_NEWNET", native64(unix.SYS_CLONE, cloneNewNet|cloneVM), notify},
		{"clone CLONE_NEWPID", native64(unix.SYS_CLONE, cloneNewPID), notify},
		{"clone CLONE_NEWIPC", native64(unix.SYS_CLONE, cloneNewIPC), notify},
		{"clone CLONE_NEWUTS", native64(unix.SYS_CLONE, cloneNewUTS), notify},
		{"clone CLONE_NEWCGROUP", native64(unix.SYS_CLONE, cloneNewCgroup), notify},
		{"unshare CLONE_FILES", native64(unix.SYS_UNSHARE, cloneFiles), allow},
		{"unshare CLONE_FS", native64(unix.SYS_UNSHARE, cloneFS), allow},
		{"unshare 0", native64(unix.SYS_UNSHARE, 0), allow},
		{"unshare CLONE_NEWUSER", native64(unix.SYS_UNSHARE, cloneNewUser), notify},
		{"unshare CLONE_NEWNS|CLONE_FILES", native64(unix.SYS_UNSHARE, cloneNewNS|cloneFiles), notify},
		{"unshare CLONE_NEWTIME", native64(unix.SYS_UNSHARE, cloneNewTime), notify},
		{"unshare CLONE_NEWUSER with high bits", native64(unix.SYS_UNSHARE, 0xdead_0000_0000_0000|cloneNewUser), notify},
		{"ioctl TCGETS", native64(unix.SYS_IOCTL, 0, tcgets), allow},
		{"ioctl TIOCSTI", native64(unix.SYS_IOCTL, 0, ioctlTIOCSTI), notify},
		{"ioctl TIOCSTI high bits", native64(unix.SYS_IOCTL, 0, 0x1_0000_5412), notify},
		{"ioctl TIOCSTI all high bits", native64(unix.SYS_IOCTL, 3, 0xffffffff_00005412), notify},
		{"ioctl TIOCLINUX", native64(unix.SYS_IOCTL, 0, ioctlTIOCLINUX), notify},
		{"ioctl TIOCLINUX high bits", native64(unix.SYS_IOCTL, 0, 0x8000_0000_0000_541c), notify},
		{"ioctl TIOCSTI in arg0 only", native64(unix.SYS_IOCTL, ioctlTIOCSTI, tcgets), allow},
		{"socket AF_INET", native64(unix.SYS_SOCKET, unix.AF_INET, unix.SOCK_STREAM), allow},
		{"socket AF_UNIX", native64(unix.SYS_SOCKET, unix.AF_UNIX, unix.SOCK_STREAM), allow},
		{"socket AF_VSOCK", native64(unix.SYS_SOCKET, unix.AF_VSOCK, unix.SOCK_STREAM), notify},
		{"socket AF_VSOCK high bits", native64(unix.SYS_SOCKET, 1<<32|unix.AF_VSOCK, unix.SOCK_STREAM), notify},
		{"socket AF_UNIX SOCK_DGRAM", native64(unix.SYS_SOCKET, unix.AF_UNIX, unix.SOCK_DGRAM), notify},
		{"socket AF_UNIX SOCK_DGRAM|SOCK_CLOEXEC|SOCK_NONBLOCK", native64(unix.SYS_SOCKET, unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK), notify},
		{"socket AF_UNIX SOCK_SEQPACKET", native64(unix.SYS_SOCKET, unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC), allow},
		{"socket AF_INET SOCK_DGRAM", native64(unix.SYS_SOCKET, unix.AF_INET, unix.SOCK_DGRAM), allow},
		{"socket AF_UNIX SOCK_DGRAM in arg2 only", native64(unix.SYS_SOCKET, unix.AF_UNIX, unix.SOCK_STREAM, unix.SOCK_DGRAM), allow},
		{"socketpair AF_UNIX SOCK_STREAM", native64(unix.SYS_SOCKETPAIR, unix.AF_UNIX, unix.SOCK_STREAM, 0, 0), allow},
		{"socketpair AF_UNIX SOCK_DGRAM", native64(unix.SYS_SOCKETPAIR, unix.AF_UNIX, unix.SOCK_DGRAM, 0, 0), notify},
		{"socketpair AF_UNIX SOCK_DGRAM high bits", native64(unix.SYS_SOCKETPAIR, 1<<40|unix.AF_UNIX, 1<<33|unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0, 0), notify},
		{"fchmod 0755", native64(unix.SYS_FCHMOD, 3, 0o755), allow},
		{"fchmod 04755", native64(unix.SYS_FCHMOD, 3, 0o4755), notify},
		{"fchmod 02755", native64(unix.SYS_FCHMOD, 3, 0o2755), notify},
		{"personality PER_LINUX", native64(unix.SYS_PERSONALITY, 0), allow},
		{"personality PER_LINUX32", native64(unix.SYS_PERSONALITY, 8), allow},
		{"personality UNAME26", native64(unix.SYS_PERSONALITY, 0x20000), allow},
		{"personality UNAME26|PER_LINUX32", native64(unix.SYS_PERSONALITY, 0x20008), allow},
		{"personality query", native64(unix.SYS_PERSONALITY, 0xffffffff), allow},
		{"personality query high bits", native64(unix.SYS_PERSONALITY, 0x1_ffffffff), allow},
		{"personality ADDR_NO_RANDOMIZE", native64(unix.SYS_PERSONALITY, 0x0040000), notify},
		{"personality READ_IMPLIES_EXEC", native64(unix.SYS_PERSONALITY, 0x0400000), notify},
		{"personality PER_BSD", native64(unix.SYS_PERSONALITY, 0x6), notify},
		{"clone3", native64(unix.SYS_CLONE3, 0, 88), enosys},
		{"mount", native64(unix.SYS_MOUNT), notify},
		{"ptrace", native64(unix.SYS_PTRACE), notify},
		{"foreign arch i386", call{arch: unix.AUDIT_ARCH_I386, nr: unix.SYS_READ}, kill},
		{"foreign arch arm", call{arch: unix.AUDIT_ARCH_ARM, nr: unix.SYS_READ}, kill},
		{"foreign arch zero", call{arch: 0, nr: 0}, kill},
		{"unknown number", native64(0x3fff_ffff), allow},
		{"unknown number 1000", native64(1000), allow},
	}
	if native.x32Bit != 0 {
		cases = append(cases,
			struct {
				name string
				c    call
				want uint32
			}{"x32 read", native64(int32(native.x32Bit) | unix.SYS_READ), kill},
			struct {
				name string
				c    call
				want uint32
			}{"x32 mount", native64(int32(native.x32Bit) | unix.SYS_MOUNT), kill},
			struct {
				name string
				c    call
				want uint32
			}{"nr -1", native64(-1), kill},
		)
	}
	for _, c := range cases {
		if got := vm.run(t, c.c); got != c.want {
			t.Errorf("%s: %s, want %s", c.name, verdictName(got), verdictName(c.want))
		}
	}
}

// TestFilterObservesWrites: with ObserveWrites, writes by path are
// notified (open and openat only with a write flag) and reads are not;
// without it nothing of the set is.
func TestFilterObservesWrites(t *testing.T) {
	const (
		rdonly    = 0x0
		wronly    = 0x1
		rdwr      = 0x2
		creat     = 0x40
		excl      = 0x80
		trunc     = 0x200
		appendF   = 0x400
		directory = 0x10000
		cloexec   = 0x80000
		path      = 0x200000
	)
	for name, want := range map[string]int{"O_WRONLY": unix.O_WRONLY, "O_RDWR": unix.O_RDWR, "O_CREAT": unix.O_CREAT, "O_TRUNC": unix.O_TRUNC} {
		if openWriteFlags&want == 0 {
			t.Errorf("openWriteFlags %#x lacks %s (%#x)", openWriteFlags, name, want)
		}
	}
	if openWriteFlags != unix.O_WRONLY|unix.O_RDWR|unix.O_CREAT|unix.O_TRUNC {
		t.Errorf("openWriteFlags %#x", openWriteFlags)
	}
	vm := newVM(t, Options{ObserveWrites: true})
	plain := newVM(t, Options{})
	for _, name := range specObserved {
		nr, ok := resolve(t, name)
		if !ok {
			continue
		}
		if !Observed(nr) || !Watched(nr) {
			t.Errorf("%s: Observed %v, Watched %v", name, Observed(nr), Watched(nr))
		}
		if got := plain.run(t, native64(nr, 0xffffffff, 0xffffffff, 0xffffffff)); got != allow {
			t.Errorf("%s without ObserveWrites: %s", name, verdictName(got))
		}
		if name == "open" || name == "openat" {
			continue
		}
		if got := vm.run(t, native64(nr)); got != notify {
			t.Errorf("%s: %s, want USER_NOTIF", name, verdictName(got))
		}
	}
	for _, name := range []string{"read", "write", "ftruncate", "fchmod", "stat", "connect", "mount"} {
		if nr, ok := native.number(name); ok && Observed(nr) {
			t.Errorf("%s is Observed", name)
		}
	}
	openat := func(flags uint64) call { return native64(unix.SYS_OPENAT, ^uint64(99), 0x7f00_0000_1000, flags, 0o644) }
	for _, c := range []struct {
		name string
		c    call
		want uint32
	}{
		{"openat O_RDONLY", openat(rdonly), allow},
		{"openat O_RDONLY|O_CLOEXEC|O_DIRECTORY", openat(rdonly | cloexec | directory), allow},
		{"openat O_PATH", openat(path | cloexec), allow},
		{"openat O_RDONLY|O_EXCL (no O_CREAT)", openat(excl), allow},
		{"openat O_RDONLY high bits", openat(0xffffffff_00000000), allow},
		{"openat O_WRONLY", openat(wronly), notify},
		{"openat O_RDWR", openat(rdwr | cloexec), notify},
		{"openat O_CREAT (read-only create)", openat(creat), notify},
		{"openat O_TRUNC", openat(trunc), notify},
		{"openat O_WRONLY|O_CREAT|O_TRUNC", openat(wronly | creat | trunc), notify},
		{"openat O_WRONLY|O_APPEND high bits", openat(0xdead_0000_0000_0000 | wronly | appendF), notify},
		{"openat flags in arg1 only", native64(unix.SYS_OPENAT, wronly, wronly, rdonly), allow},
	} {
		if got := vm.run(t, c.c); got != c.want {
			t.Errorf("%s: %s, want %s", c.name, verdictName(got), verdictName(c.want))
		}
	}
	if nr, ok := native.number("open"); ok {
		if got := vm.run(t, native64(nr, 0x7f00_0000_1000, rdonly|cloexec)); got != allow {
			t.Errorf("open O_RDONLY: %s", verdictName(got))
		}
		if got := vm.run(t, native64(nr, 0x7f00_0000_1000, wronly|creat|trunc)); got != notify {
			t.Errorf("open O_WRONLY|O_CREAT|O_TRUNC: %s", verdictName(got))
		}
	}
	// The deny set is the same with and without observing.
	for _, name := range specDenied {
		if nr, ok := resolve(t, name); ok {
			if got := vm.run(t, native64(nr)); got != notify || Watched(nr) {
				t.Errorf("%s with ObserveWrites: %s, Watched %v", name, verdictName(got), Watched(nr))
			}
		}
	}
}

// TestForbidden checks the set-ID refusals among observed calls, and
// that other modes and opens without O_CREAT are left to the observer.
func TestForbidden(t *testing.T) {
	nr := func(name string) int32 { n, _ := resolve(t, name); return n }
	for _, c := range []struct {
		name string
		args [6]uint64
		want bool
	}{
		{"chmod", [6]uint64{0, 0o4755}, true},
		{"chmod", [6]uint64{0, 0o755}, false},
		{"fchmodat", [6]uint64{0, 0, 0o2755}, true},
		{"fchmodat", [6]uint64{0, 0, 0o1777}, false}, // sticky is fine
		{"openat", [6]uint64{0, 0, 0x41, 0o4755}, true},
		{"openat", [6]uint64{0, 0, 0x1, 0o4755}, false}, // no O_CREAT: mode unused
		{"open", [6]uint64{0, 0x241, 0o6755}, true},
		{"creat", [6]uint64{0, 0o4711}, true},
		{"mknodat", [6]uint64{0, 0, 0o100000 | 0o4755}, true},
		{"mkdirat", [6]uint64{0, 0, 0o4755}, false},
	} {
		n := nr(c.name)
		if n == 0 {
			continue
		}
		r, got := Forbidden(Notification{Nr: n, Args: c.args})
		if got != c.want || got && r.Rule != "seccomp.deny.setid_mode" {
			t.Errorf("%s %o: %v %+v, want %v", c.name, c.args, got, r, c.want)
		}
	}
}

// TestFilterAllowsEverythingElse checks every number up to well past the
// highest syscall against the design: all but the listed ones are allowed.
func TestFilterAllowsEverythingElse(t *testing.T) {
	special := map[int32]bool{}
	for _, name := range slices.Concat([]string{"clone", "clone3", "unshare", "ioctl", "personality", "socket", "socketpair", "fchmod"}, specDenied, specPtrace, specWatched) {
		if nr, ok := resolve(t, name); ok {
			special[nr] = true
		}
	}
	vm := newVM(t, Options{})
	for nr := int32(0); nr < 2048; nr++ {
		if special[nr] {
			continue
		}
		if got := vm.run(t, native64(nr, 0xffffffff, 0xffffffff, 0xffffffff)); got != allow {
			t.Errorf("%s (%d): %s, want ALLOW", Name(nr), nr, verdictName(got))
		}
	}
}

// TestFilterShape pins the properties the design relies on: small enough for
// the kernel, every jump forward and in range, and nothing loaded but arch
// and nr before the search reaches an argument-checking leaf.
func TestFilterShape(t *testing.T) {
	for _, opts := range []Options{{}, {AllowPtrace: true}, {ObserveWrites: true}} {
		filter, err := Build(opts)
		if err != nil {
			t.Fatal(err)
		}
		if len(filter) == 0 || len(filter) > maxInstructions {
			t.Fatalf("filter length %d", len(filter))
		}
		last := filter[len(filter)-1]
		if last.Code != unix.BPF_RET|unix.BPF_K {
			t.Errorf("last instruction %+v is not a return", last)
		}
		for i, f := range filter {
			if f.Code&0x07 == unix.BPF_JMP && f.Code != unix.BPF_JMP|unix.BPF_JA {
				if i+1+int(f.Jt) >= len(filter) || i+1+int(f.Jf) >= len(filter) {
					t.Errorf("instruction %d jumps out of the program", i)
				}
			}
		}
		s, _ := verdicts(native, opts)
		depth := 0
		for n := len(spans(s)); n > 1; n = (n + 1) / 2 {
			depth++
		}
		t.Logf("opts %+v: %d instructions, %d spans, search depth %d", opts, len(filter), len(spans(s)), depth)
		if depth > 8 {
			t.Errorf("search depth %d; the design expects about 7", depth)
		}
	}
}

func TestExplain(t *testing.T) {
	cases := []struct {
		n          Notification
		rule, cap  string
		detailHas  string
		syscallWas string
	}{
		{Notification{Nr: unix.SYS_MOUNT}, "seccomp.deny.mount", "", "mount a filesystem", "mount"},
		{Notification{Nr: unix.SYS_PTRACE}, "seccomp.deny.ptrace", "proc.ptrace", "trace", "ptrace"},
		{Notification{Nr: unix.SYS_PROCESS_VM_READV}, "seccomp.deny.process_vm_readv", "proc.ptrace", "memory", "process_vm_readv"},
		{Notification{Nr: unix.SYS_UNSHARE, Args: [6]uint64{cloneNewUser | cloneNewNS}}, "seccomp.deny.unshare_newns", "", "CLONE_NEWUSER|CLONE_NEWNS", "unshare"},
		{Notification{Nr: unix.SYS_CLONE, Args: [6]uint64{cloneNewNet | 17}}, "seccomp.deny.clone_newns", "", "clone with namespace flags CLONE_NEWNET", "clone"},
		{Notification{Nr: unix.SYS_IOCTL, Args: [6]uint64{0, 0x1_0000_5412}}, "seccomp.deny.ioctl_tiocsti", "", "TIOCSTI", "ioctl"},
		{Notification{Nr: unix.SYS_IOCTL, Args: [6]uint64{0, ioctlTIOCLINUX}}, "seccomp.deny.ioctl_tioclinux", "", "TIOCLINUX", "ioctl"},
		{Notification{Nr: unix.SYS_PERSONALITY, Args: [6]uint64{0x400000}}, "seccomp.deny.personality", "", "0x400000", "personality"},
		{Notification{Nr: unix.SYS_KEYCTL}, "seccomp.deny.keyctl", "", "keyrings", "keyctl"},
		{Notification{Nr: unix.SYS_SOCKET, Args: [6]uint64{unix.AF_VSOCK, unix.SOCK_STREAM}}, "seccomp.deny.socket_vsock", "", "socket(AF_VSOCK)", "socket"},
		{Notification{Nr: unix.SYS_SOCKETPAIR, Args: [6]uint64{unix.AF_UNIX, unix.SOCK_DGRAM | unix.SOCK_CLOEXEC}}, "seccomp.deny.unix_dgram", "", "socketpair(AF_UNIX, SOCK_DGRAM)", "socketpair"},
		{Notification{Nr: 4000}, "seccomp.deny.syscall_4000", "", "not permitted", "syscall_4000"},
	}
	for _, c := range cases {
		r := Explain(c.n)
		if r.Rule != c.rule || r.Capability != c.cap || r.Syscall != c.syscallWas || !strings.Contains(r.Detail, c.detailHas) {
			t.Errorf("Explain(nr %d, args %#x) = %+v, want rule %q cap %q syscall %q detail containing %q",
				c.n.Nr, c.n.Args[:2], r, c.rule, c.cap, c.syscallWas, c.detailHas)
		}
	}
	// Every notified syscall gets a specific explanation.
	for _, d := range denials {
		nr, ok := native.number(d.name)
		if !ok {
			continue
		}
		if r := Explain(Notification{Nr: nr}); r.Rule != "seccomp.deny."+d.name || !strings.HasPrefix(r.Detail, d.name+" tried to ") {
			t.Errorf("Explain(%s) = %+v", d.name, r)
		}
	}
}
