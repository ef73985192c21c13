package linux

import (
	"os"

	"golang.org/x/sys/unix"
)

// Mount wraps mount(2).
func Mount(source, target, fstype string, flags uintptr, data string) error {
	for {
		err := unix.Mount(source, target, fstype, flags, data)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return &os.PathError{Op: "mount " + source, Path: target, Err: err}
		}
		return nil
	}
}

// SetMountAttr applies attr (MOUNT_ATTR_*) to the mount at path and, with
// recursive, to every mount below it.
func SetMountAttr(path string, set, clear uint64, recursive bool) error {
	flags := uint(unix.AT_NO_AUTOMOUNT | unix.AT_SYMLINK_NOFOLLOW)
	if recursive {
		flags |= unix.AT_RECURSIVE
	}
	attr := unix.MountAttr{Attr_set: set, Attr_clr: clear}
	if err := unix.MountSetattr(unix.AT_FDCWD, path, flags, &attr); err != nil {
		return &os.PathError{Op: "mount_setattr", Path: path, Err: err}
	}
	return nil
}

// PivotRoot makes newRoot the root of the calling mount namespace and
// detaches the old root, using the pivot_root(".", ".") idiom: the old
// root ends up stacked on top of the new one and is lazily unmounted.
func PivotRoot(newRoot string) error {
	if err := unix.Chdir(newRoot); err != nil {
		return &os.PathError{Op: "chdir", Path: newRoot, Err: err}
	}
	if err := unix.PivotRoot(".", "."); err != nil {
		return &os.PathError{Op: "pivot_root", Path: newRoot, Err: err}
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return &os.PathError{Op: "umount old root", Path: newRoot, Err: err}
	}
	if err := unix.Chdir("/"); err != nil {
		return &os.PathError{Op: "chdir", Path: "/", Err: err}
	}
	return nil
}

// OpenTreeClone returns a detached copy of the mount tree at path, ready
// to be given attributes (an idmapping) and attached with MoveMount.
func OpenTreeClone(path string) (*os.File, error) {
	fd, err := unix.OpenTree(unix.AT_FDCWD, path, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_RECURSIVE)
	if err != nil {
		return nil, &os.PathError{Op: "open_tree", Path: path, Err: err}
	}
	return os.NewFile(uintptr(fd), path), nil
}

// IDMapTree applies the idmapping of the user namespace usernsFD to the
// detached tree treeFD (and every mount below it).
func IDMapTree(tree *os.File, usernsFD int) error {
	attr := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_IDMAP, Userns_fd: uint64(usernsFD)}
	if err := unix.MountSetattr(int(tree.Fd()), "", unix.AT_EMPTY_PATH|unix.AT_RECURSIVE, &attr); err != nil {
		return &os.PathError{Op: "mount_setattr idmap", Path: tree.Name(), Err: err}
	}
	return nil
}

// AttachTree attaches a detached tree at target.
func AttachTree(tree *os.File, target string) error {
	if err := unix.MoveMount(int(tree.Fd()), "", unix.AT_FDCWD, target, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return &os.PathError{Op: "move_mount", Path: target, Err: err}
	}
	return nil
}

// OpenTreeCloneFD is OpenTreeClone of the object an O_PATH descriptor
// holds, with no path resolution at all.
func OpenTreeCloneFD(f *os.File) (*os.File, error) {
	fd, err := unix.OpenTree(int(f.Fd()), "", unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_RECURSIVE|unix.AT_EMPTY_PATH)
	if err != nil {
		return nil, &os.PathError{Op: "open_tree", Path: f.Name(), Err: err}
	}
	return os.NewFile(uintptr(fd), f.Name()), nil
}
