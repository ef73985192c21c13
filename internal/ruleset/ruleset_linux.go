// Package ruleset is the session's Landlock ruleset: which paths of the
// view the untrusted tier may read, write and execute.
package ruleset

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/landlock-lsm/go-landlock/landlock"
	ll "github.com/landlock-lsm/go-landlock/landlock/syscall"
	"golang.org/x/sys/unix"

	"github.com/cordon-sandbox/cordon/internal/plan"
)

// Options are the ruleset's settings that are not in the plan. The zero
// value is what For builds.
type Options struct {
	// LogNewExec makes the domain write kernel audit records for the
	// accesses it refuses after an execve(2), that is in the executor and
	// in every tool it runs (LANDLOCK_RESTRICT_SELF_LOG_NEW_EXEC_ON, ABI
	// 7; left out on older kernels, where the returned flags say so).
	// Without it a domain logs only the denials of the program that
	// created it, up to its next execve(2): here the supervisor thread
	// that starts the executor. Set it when the host reads the records
	// (package kaudit): while audit is on, a host's auditd receives every
	// logged denial of the session too.
	LogNewExec bool
	// ExeFD, when positive, is an O_PATH descriptor of the cordon binary,
	// for a caller to whom /proc/self/exe does not name it (a host thread
	// that joined the session's mount namespace, where /proc is the
	// session's).
	ExeFD int
}

// For builds the session's Landlock ruleset with the zero Options.
func For(p *plan.Plan) (fd int, flags uint32, err error) {
	return ForOptions(p, Options{})
}

// ForOptions builds the session's Landlock ruleset from its plan, with paths as
// the view has them (call it after pivot_root): the view's read-only
// binds readable and executable, the workspace, /tmp, $HOME and writable
// binds read-write, the minimal /dev, and /proc readable. IPC is scoped to
// the domain: no signals to, and no abstract unix sockets of, processes
// outside it (the supervisor, the host). The caller owns the returned
// descriptor; flags are for landlock_restrict_self(2) (RestrictThread).
func ForOptions(p *plan.Plan, o Options) (fd int, flags uint32, err error) {
	cfg := landlock.Config{
		HandledAccessFS: landlock.V7.HandledAccessFS,
		Scoped:          landlock.V7.Scoped,
	}.BestEffort()
	if o.LogNewExec {
		cfg = cfg.EnableLoggingForSubprocesses()
	}
	w := WritableOf(p)
	var ro, roFiles []string
	for _, b := range p.Binds {
		switch {
		case b.Kind == plan.BindSymlink, b.Writable:
		case b.Kind == plan.BindDir:
			ro = append(ro, b.Target)
		default:
			roFiles = append(roFiles, b.Target)
		}
	}
	if !p.WorkspaceWritable {
		ro = append(ro, p.Workspace)
	}
	rules := []landlock.Rule{
		landlock.PathAccess(ll.AccessFSReadDir, "/"),
		landlock.RODirs(ro...).IgnoreIfMissing(),
		landlock.ROFiles(roFiles...).IgnoreIfMissing(),
		landlock.RODirs("/proc", "/dev"),
		landlock.RWDirs(w.dirs...).WithRefer(),
		// The harmless devices take ioctls too: none of them has one
		// that does anything for a process without CAP_SYS_ADMIN in the
		// initial namespace (null, zero and full answer ENOTTY to all;
		// random and urandom allow only RNDGETENTCNT, a read of the
		// entropy count). Without the right every isatty(3) on a
		// redirection to /dev/null (TCGETS) would be a Landlock denial,
		// an audit record and an event for nothing.
		landlock.RWFiles(devices...).WithIoctlDev(),
		landlock.RWFiles("/dev/tty").WithIoctlDev().IgnoreIfMissing(),
		landlock.RWDirs("/dev/pts").WithIoctlDev(),
	}
	// The cordon binary itself, reached only through /proc/self/exe
	// (it is not in the view): the executor is started inside the
	// domain.
	const exeAccess = ll.AccessFSExecute | ll.AccessFSReadFile
	if o.ExeFD <= 0 {
		rules = append(rules, landlock.PathAccess(exeAccess, "/proc/self/exe"))
	}
	fd, flags, err = cfg.NewRulesetFD(rules...)
	if err != nil {
		return -1, 0, err
	}
	if fd < 0 {
		return -1, 0, errors.New("this kernel has no Landlock")
	}
	if o.ExeFD > 0 {
		attr := ll.PathBeneathAttr{AllowedAccess: exeAccess, ParentFd: o.ExeFD}
		if err := ll.LandlockAddPathBeneathRule(fd, &attr, 0); err != nil {
			unix.Close(fd)
			return -1, 0, fmt.Errorf("adding the cordon binary to the ruleset: %w", err)
		}
	}
	return fd, flags, nil
}

// devices are the device files of the view that every session may read,
// write and use ioctls on.
var devices = []string{"/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom"}

// Writable is what the ruleset lets the untrusted tier modify: whole
// directory hierarchies (every right below them) and single files. It is
// the list ForOptions grants, so the supervisor's write observer can tell
// a write that Landlock will refuse from the plan alone (when no kernel
// audit reader reports those refusals itself).
type Writable struct {
	dirs, files []string
}

// WritableOf returns what the session of p may write: /tmp, $HOME,
// /dev/shm, /dev/pts, the writable binds and the workspace when it is
// writable; the harmless devices and /dev/tty.
func WritableOf(p *plan.Plan) Writable {
	w := Writable{dirs: []string{"/tmp", p.Home, "/dev/shm"}}
	for _, b := range p.Binds {
		if b.Writable && b.Kind != plan.BindSymlink {
			// A writable file bind is granted like a directory; Landlock
			// keeps the rights that apply to a file.
			w.dirs = append(w.dirs, b.Target)
		}
	}
	if p.WorkspaceWritable {
		w.dirs = append(w.dirs, p.Workspace)
	}
	w.files = append(append(w.files, devices...), "/dev/tty")
	return w
}

// Dirs are the granted directories: everything below each is writable.
func (w Writable) Dirs() []string { return w.dirs }

// Allows reports whether path (absolute and clean, as the view has it, no
// symlink in it) lies where the ruleset lets the untrusted tier write: in
// a granted directory or below it, or on a granted file. /dev/pts is
// granted too, but nothing can be created there.
func (w Writable) Allows(path string) bool {
	for _, d := range append(w.dirs, "/dev/pts") {
		if path == d || strings.HasPrefix(path, d+"/") || d == "/" {
			return true
		}
	}
	for _, f := range w.files {
		if path == f {
			return true
		}
	}
	return false
}

// ABI returns the kernel's Landlock ABI version and the warnings a
// session should carry for what that version cannot enforce.
func ABI() (int, []string, error) {
	abi, err := ll.LandlockGetABIVersion()
	if err != nil || abi < 1 {
		return 0, nil, fmt.Errorf("landlock is not available: %v", err)
	}
	var warnings []string
	if abi < 6 {
		warnings = append(warnings, fmt.Sprintf("landlock ABI %d: no signal or abstract unix socket scoping (needs 6)", abi))
	}
	return abi, warnings, nil
}

// RestrictThread puts the calling thread, and only it, into the domain
// of ruleset fd. Landlock domains belong to threads: without
// LANDLOCK_RESTRICT_SELF_TSYNC (ABI 8) a Go process that restricted
// itself thread by thread would hold one sibling domain per thread, and
// signal scoping would then stop one thread from killing a child another
// one forked. So the supervisor restricts one locked thread, starts the
// executor from it (a child inherits its parent thread's domain), and
// lets that thread die; every thread of the executor descends from one
// domain.
func RestrictThread(fd int, flags uint32) error {
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return os.NewSyscallError("prctl PR_SET_NO_NEW_PRIVS", err)
	}
	return ll.LandlockRestrictSelf(fd, flags)
}
