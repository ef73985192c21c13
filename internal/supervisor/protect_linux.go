package supervisor

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/cordon-sandbox/cordon/events"
	"github.com/cordon-sandbox/cordon/internal/plan"
)

// Workspace protections (policy workspace.protect) are mounts over paths
// in the workspace, made once the workspace is in place and before
// anything of the session's runs:
//
//   - a read-only protection binds the object over itself read-only, so
//     that nothing at or beneath it can be written, created, renamed or
//     removed (a mount point cannot be renamed, removed or replaced);
//   - a pin binds a directory over itself read-write, so that it cannot
//     be renamed away and recreated with other contents, which would take
//     the protections beneath it along.
//
// Landlock cannot do this: its rules are allow-only and inherited, so a
// writable workspace cannot hold a read-only hole. The host listed the
// paths (plan.Protect, parents first); here each one is opened again from
// the workspace's root with RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS, and the
// mount is cloned from and attached to that very descriptor
// (open_tree, move_mount), so no path is resolved twice and no symbolic
// link is followed: a path that has changed since the host looked (gone,
// or turned into a link or into another kind of file) fails the session.

// protection is a read-only protection the view made.
type protection struct {
	plan.Protect
	// mount is the protection's mount (its root), kept open so that a
	// grant lifts this very mount, wherever its path now leads.
	mount *os.File
}

// protections are the read-only protections of the view, set while the
// view is built, for liftProtections.
var protections []*protection

// protectWorkspace makes p's protections, except those p.Unprotect lifts,
// in the workspace whose root is the descriptor ws.
func protectWorkspace(ws int, p *plan.Plan) ([]*protection, error) {
	var made []*protection
	for _, pr := range p.Protect {
		if p.Lifted(pr) {
			continue
		}
		m, err := protect(ws, pr)
		if err != nil {
			for _, m := range made {
				m.mount.Close()
			}
			return nil, fmt.Errorf("protecting %s (workspace.protect %s): %w", pr.Path, pr.Entry, err)
		}
		if pr.Kind == plan.ProtectReadOnly {
			made = append(made, &protection{Protect: pr, mount: m})
		} else {
			m.Close()
		}
	}
	return made, nil
}

// protect binds pr over itself and returns the new mount.
func protect(ws int, pr plan.Protect) (*os.File, error) {
	how := unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_NOFOLLOW | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
	}
	fd, err := unix.Openat2(ws, pr.Path, &how)
	if err != nil {
		return nil, changed(err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, &os.PathError{Op: "fstat", Path: pr.Path, Err: err}
	}
	switch mode := st.Mode & unix.S_IFMT; {
	case mode == unix.S_IFLNK, (mode == unix.S_IFDIR) != pr.Dir:
		return nil, changed(nil)
	}
	tree, err := unix.OpenTree(fd, "", unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_EMPTY_PATH|unix.AT_RECURSIVE)
	if err != nil {
		return nil, &os.PathError{Op: "open_tree", Path: pr.Path, Err: err}
	}
	m := os.NewFile(uintptr(tree), pr.Path)
	if pr.Kind == plan.ProtectReadOnly {
		attr := unix.MountAttr{Attr_set: attrRO}
		if err := unix.MountSetattr(tree, "", unix.AT_EMPTY_PATH|unix.AT_RECURSIVE, &attr); err != nil {
			m.Close()
			return nil, &os.PathError{Op: "mount_setattr", Path: pr.Path, Err: err}
		}
	}
	if err := unix.MoveMount(tree, "", fd, "", unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_EMPTY_PATH); err != nil {
		m.Close()
		return nil, &os.PathError{Op: "move_mount", Path: pr.Path, Err: err}
	}
	return m, nil
}

func changed(err error) error {
	msg := "it changed while the session was opening"
	if err != nil {
		msg += fmt.Sprintf(" (%v)", err)
	}
	return errors.New(msg)
}

// liftProtections unmounts the read-only protections that p.Unprotect
// now lifts (fs.write grants), for an executor about to restart with
// them, and returns their paths. Each is unmounted through the
// descriptor of its own mount, never through a path that the session
// could have redirected with a symbolic link or a rename.
//
// It needs CAP_SYS_ADMIN in the session's user namespace, which the
// supervisor gives up once the session is set up: the restart must keep
// or regain it for this step.
func liftProtections(p *plan.Plan) ([]string, error) {
	var lifted []string
	kept := protections[:0]
	var errs []error
	for _, pr := range protections {
		if !p.Lifted(pr.Protect) {
			kept = append(kept, pr)
			continue
		}
		err := unix.Unmount(fmt.Sprintf("/proc/self/fd/%d", pr.mount.Fd()), unix.MNT_DETACH)
		if err != nil {
			kept = append(kept, pr)
			errs = append(errs, &os.PathError{Op: "umount", Path: pr.Path, Err: err})
			continue
		}
		pr.mount.Close()
		lifted = append(lifted, pr.Path)
	}
	protections = kept
	return lifted, errors.Join(errs...)
}

// protectDenial names the rule of a file tool's write refused (EROFS) by
// a workspace protection, and the grant that would lift it; it reports
// false for a read-only path that no protection covers.
func protectDenial(p *plan.Plan, e *events.Event, target string) bool {
	pr := p.Protecting(target)
	if pr == nil {
		return false
	}
	e.Rule = "policy.workspace.protect"
	e.Remedy = &events.Remedy{Capability: "fs.write:" + p.ViewPath(*pr)}
	e.Detail["protected"] = pr.Path
	e.Detail["entry"] = pr.Entry
	e.Detail["reason"] = fmt.Sprintf("%s: %s is kept read-only in this session (workspace.protect %s): the host runs or reads it outside the sandbox later", target, pr.Path, pr.Entry)
	return true
}

// openWorkspace opens the workspace's root in the view being built and
// checks that it is the root of a mount (the workspace just mounted).
func openWorkspace(p *plan.Plan) (int, error) {
	how := unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
	}
	fd, err := unix.Openat2(unix.AT_FDCWD, newRoot+p.Workspace, &how)
	if err != nil {
		return -1, &os.PathError{Op: "openat2", Path: p.Workspace, Err: err}
	}
	var stx unix.Statx_t
	if err := unix.Statx(fd, "", unix.AT_EMPTY_PATH, 0, &stx); err != nil {
		unix.Close(fd)
		return -1, &os.PathError{Op: "statx", Path: p.Workspace, Err: err}
	}
	if stx.Attributes_mask&unix.STATX_ATTR_MOUNT_ROOT == 0 || stx.Attributes&unix.STATX_ATTR_MOUNT_ROOT == 0 {
		unix.Close(fd)
		return -1, fmt.Errorf("%s is not the workspace mount", p.Workspace)
	}
	return fd, nil
}

// protectView makes the workspace protections of the view being built.
func protectView(p *plan.Plan) error {
	if len(p.Protect) == 0 {
		return nil
	}
	ws, err := openWorkspace(p)
	if err != nil {
		return err
	}
	defer unix.Close(ws)
	made, err := protectWorkspace(ws, p)
	if err != nil {
		return err
	}
	protections = made
	return nil
}
