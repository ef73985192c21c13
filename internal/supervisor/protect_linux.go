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
// (If setup fails halfway, the mounts made so far go with the session's
// mount namespace.)

// protectWorkspace makes p's protections, except those p.Unprotect lifts,
// in the workspace whose root is the descriptor ws. (A grant that comes
// later lifts a protection by mounting the granted path over it; see
// sandbox.mountGrants.)
func protectWorkspace(ws int, p *plan.Plan) error {
	for _, pr := range p.Protect {
		if p.Lifted(pr) {
			continue
		}
		if err := protect(ws, pr); err != nil {
			return fmt.Errorf("protecting %s (workspace.protect %s): %w", pr.Path, pr.Entry, err)
		}
	}
	return nil
}

// protect binds pr over itself.
func protect(ws int, pr plan.Protect) error {
	how := unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_NOFOLLOW | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
	}
	fd, err := unix.Openat2(ws, pr.Path, &how)
	if err != nil {
		return changed(err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return &os.PathError{Op: "fstat", Path: pr.Path, Err: err}
	}
	switch mode := st.Mode & unix.S_IFMT; {
	case mode == unix.S_IFLNK, (mode == unix.S_IFDIR) != pr.Dir:
		return changed(nil)
	}
	tree, err := unix.OpenTree(fd, "", unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_EMPTY_PATH|unix.AT_RECURSIVE)
	if err != nil {
		return &os.PathError{Op: "open_tree", Path: pr.Path, Err: err}
	}
	defer unix.Close(tree)
	if pr.Kind == plan.ProtectReadOnly {
		attr := unix.MountAttr{Attr_set: attrRO}
		if err := unix.MountSetattr(tree, "", unix.AT_EMPTY_PATH|unix.AT_RECURSIVE, &attr); err != nil {
			return &os.PathError{Op: "mount_setattr", Path: pr.Path, Err: err}
		}
	}
	if err := unix.MoveMount(tree, "", fd, "", unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_EMPTY_PATH); err != nil {
		return &os.PathError{Op: "move_mount", Path: pr.Path, Err: err}
	}
	return nil
}

func changed(err error) error {
	msg := "it changed while the session was opening"
	if err != nil {
		msg += fmt.Sprintf(" (%v)", err)
	}
	return errors.New(msg)
}

// protectDenial names the rule of a write refused (EROFS) by a workspace
// protection, and the grant that would lift it; it reports false for a
// read-only path that no protection covers. target is a path in the
// session or one relative to the workspace, as the call named it.
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
	return protectWorkspace(ws, p)
}
