package sandbox

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"

	"golang.org/x/sys/unix"

	"github.com/cordon-sandbox/cordon/internal/linux"
	"github.com/cordon-sandbox/cordon/internal/plan"
	"github.com/cordon-sandbox/cordon/internal/ruleset"
)

// A filesystem grant (fs.read:PATH, fs.write:PATH) needs two things the
// session's stages cannot do for themselves once set up: a new mount in
// the view (the supervisor keeps no CAP_SYS_ADMIN) and a Landlock ruleset
// naming a path the supervisor, without capabilities, may not be able to
// open. A root host does both: on a thread of its own that joins the
// session's mount namespace (and dies afterwards, so no other goroutine
// ever runs in it), it attaches a detached copy of the host path, opened
// with the session owner's access, and builds the new executor's ruleset
// there; the ruleset goes to the supervisor as a descriptor. A rootless
// host cannot join the namespace (setns into a user namespace needs a
// single-threaded caller), so filesystem grants need a root-started
// session.

// fsGrant is one filesystem grant.
type fsGrant struct {
	path  string // host path, the same in the view
	write bool
}

// inSessionMounts runs fn on a fresh OS thread that has joined the
// session's mount namespace; the thread ends with fn.
func (s *Session) inSessionMounts(fn func() error) error {
	ns, err := unix.Open(fmt.Sprintf("/proc/%d/ns/mnt", s.cmd.Process.Pid), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return os.NewSyscallError("open mount namespace", err)
	}
	defer unix.Close(ns)
	errc := make(chan error, 1)
	go func() {
		// Locked and never unlocked: the runtime ends the thread, and
		// its namespace with it, when this goroutine returns.
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_FS); err != nil {
			errc <- os.NewSyscallError("unshare(CLONE_FS)", err)
			return
		}
		if err := unix.Setns(ns, unix.CLONE_NEWNS); err != nil {
			errc <- os.NewSyscallError("setns(mount)", err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// grantTree is a detached copy of the host path of g, opened with the
// session owner's access: read-only for fs.read, idmapped (its owner
// appears as the executor, as the workspace does) for fs.write.
func (s *Session) grantTree(g fsGrant) (*os.File, error) {
	if g.write {
		t, err := idmappedWorkspace(g.path, s.walker, s.ids.hostUID+1, s.ids.hostGID+1)
		var se *Error
		if errors.As(err, &se) {
			se.Message = "fs.write:" + g.path + ": " + se.Message
		}
		return t, err
	}
	f, err := walkOpen(g.path, s.walker)
	if errors.Is(err, os.ErrNotExist) {
		return nil, &Error{Code: CodeNotFound, Message: "fs.read:" + g.path + ": no such file or directory on the host"}
	}
	if err != nil {
		return nil, &Error{Code: CodeDenied, Message: "fs.read:" + g.path + ": " + err.Error()}
	}
	defer f.Close()
	t, err := linux.OpenTreeCloneFD(f)
	if err != nil {
		return nil, &Error{Code: CodeFailed, Message: "fs.read:" + g.path + ": " + err.Error()}
	}
	attr := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY | unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV}
	if err := unix.MountSetattr(int(t.Fd()), "", unix.AT_EMPTY_PATH|unix.AT_RECURSIVE, &attr); err != nil {
		t.Close()
		return nil, &Error{Code: CodeFailed, Message: "fs.read:" + g.path + ": " + err.Error()}
	}
	return t, nil
}

// mountGrants makes the view hold exactly want (mounting what is new,
// detaching what was revoked), then builds the Landlock ruleset of plan
// p there. It returns the ruleset descriptor.
func (s *Session) mountGrants(want []fsGrant, p *plan.Plan) (rulesetFD int, err error) {
	if !s.ids.rootful {
		return -1, &Error{Code: CodeUnsupported, Message: "filesystem grants need a session started by root (the host joins the session's mount namespace to add the mount)"}
	}
	var trees []*os.File
	defer func() {
		for _, t := range trees {
			t.Close()
		}
	}()
	var add []fsGrant
	for _, g := range want {
		if !slices.Contains(s.mounted, g) {
			t, err := s.grantTree(g)
			if err != nil {
				return -1, err
			}
			add, trees = append(add, g), append(trees, t)
		}
	}
	// This binary, as the executor is started from it, named here: in the
	// session's mount namespace /proc/self is not this process.
	exe, err := unix.Open("/proc/self/exe", unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, os.NewSyscallError("open /proc/self/exe", err)
	}
	defer unix.Close(exe)
	rulesetFD = -1
	err = s.inSessionMounts(func() error {
		for _, g := range s.mounted {
			if !slices.Contains(want, g) {
				if err := unix.Unmount(g.path, unix.MNT_DETACH); err != nil {
					return &Error{Code: CodeFailed, Message: fmt.Sprintf("revoking %s: %v", g.path, err)}
				}
			}
		}
		// Directories made for mount points belong to the session's root
		// (the session's file systems know no other owner).
		if err := linux.SetFSIDs(s.ids.hostUID, s.ids.hostGID); err != nil {
			return err
		}
		for i, g := range add {
			if err := mountPoint(g.path, trees[i], p.Home); err != nil {
				return err
			}
			if err := linux.AttachTree(trees[i], g.path); err != nil {
				return &Error{Code: CodeFailed, Message: "attaching " + g.path + ": " + err.Error()}
			}
		}
		// The ruleset opens every path of the view: back to root's access.
		if err := linux.SetFSIDs(0, 0); err != nil {
			return err
		}
		fd, _, err := ruleset.ForOptions(p, ruleset.Options{ExeFD: exe, LogNewExec: p.LandlockAudit})
		if err != nil {
			return &Error{Code: CodeFailed, Message: "building the landlock ruleset: " + err.Error()}
		}
		rulesetFD = fd
		return nil
	})
	if err != nil {
		return -1, err
	}
	s.mounted = slices.Clone(want)
	return rulesetFD, nil
}

// mountPoint makes sure path exists in the view (this thread is in the
// session's mount namespace) to attach tree on. Missing directories are
// made only in the session's own file systems (the view's root, its /tmp
// and HOME), never under a bind of a host path, so that a grant never
// creates anything on the host.
func mountPoint(path string, tree *os.File, home string) (err error) {
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSymlink != 0 {
			return &Error{Code: CodeDenied, Message: path + " is a symbolic link in the session's view; a grant is mounted only on the path itself"}
		}
		return nil
	}
	a := filepath.Dir(path)
	var anc unix.Stat_t
	for ; a != "/"; a = filepath.Dir(a) {
		if unix.Stat(a, &anc) == nil {
			break
		}
	}
	own := false
	for _, d := range []string{"/", "/tmp", home} {
		var st unix.Stat_t
		if unix.Stat(d, &st) == nil && (a == "/" || st.Dev == anc.Dev) {
			own = true
			break
		}
	}
	if !own {
		return &Error{Code: CodeUnsupported, Message: fmt.Sprintf("%s is not in the session's view, and %s holds a host directory: a grant does not create paths on the host", path, a)}
	}
	// The view's root is read-only: open it for the mkdir only.
	if err := linux.SetMountAttr("/", 0, unix.MOUNT_ATTR_RDONLY, false); err != nil {
		return err
	}
	defer func() {
		if rerr := linux.SetMountAttr("/", unix.MOUNT_ATTR_RDONLY, 0, false); rerr != nil && err == nil {
			err = fmt.Errorf("making the view's root read-only again: %w", rerr)
		}
	}()
	var st unix.Stat_t
	if err := unix.Fstat(int(tree.Fd()), &st); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		return os.MkdirAll(path, 0o755)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, nil, 0o644)
}

// sendRuleset hands a ruleset descriptor to the supervisor for the next
// reconfigure, and closes it here.
func (s *Session) sendRuleset(fd int) error {
	defer unix.Close(fd)
	_, _, err := s.egress.WriteMsgUnix([]byte("ruleset"), unix.UnixRights(fd), nil)
	return err
}
