package supervisor

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cordon-sandbox/cordon/internal/linux"
	"github.com/cordon-sandbox/cordon/internal/plan"
)

// The view is built in a scratch tmpfs mounted over /tmp of the (private)
// mount namespace, then entered with pivot_root:
//
//	/tmp (scratch tmpfs) ──pivot_root──▶ /          scratch root
//	                                     /oldroot   the host's root, to bind from
//	                                     /newroot   the view being built
//	                                     /files     generated files (passwd, empty)
//
// Then /newroot becomes the root and the scratch tmpfs, with the host's
// root under it, is detached. The order below matters:
//
//  1. Mount propagation private, so nothing reaches the host.
//  2. tmpfs /tmp and $HOME before the workspace, which may live under /tmp.
//  3. Host binds, each made read-only the moment it is mounted, so that a
//     later mkdir for a nested mount point can never write to the host.
//  4. The workspace (an idmapped tree from the host, or a bind).
//  5. /proc, /dev.
//  6. The workspace protections, over the workspace (protect_linux.go).
//  7. Hides and generated /etc files over the binds.
//  8. The view root read-only, pivot_root, detach the old root.
const (
	scratch = "/tmp"
	oldRoot = "/oldroot"
	newRoot = "/newroot"
	files   = "/files"
)

const (
	attrRO     = unix.MOUNT_ATTR_RDONLY | unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV
	attrRW     = unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV
	tmpfsFlags = unix.MS_NOSUID | unix.MS_NODEV
)

// devices are the host device nodes bound into the minimal /dev.
var devices = []string{"null", "zero", "full", "random", "urandom", "tty"}

// buildView constructs the session's filesystem view and pivots into it.
// workspaceTree, when non-nil, is the idmapped workspace mount.
// Timing records how long each phase took, in microseconds.
func buildView(p *plan.Plan, workspaceTree *os.File, timing map[string]int64) error {
	t := time.Now()
	phase := func(name string) {
		now := time.Now()
		timing[name] = now.Sub(t).Microseconds()
		t = now
	}
	if err := linux.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return err
	}
	if err := linux.Mount("tmpfs", scratch, "tmpfs", tmpfsFlags, "mode=0755,size=4m"); err != nil {
		return err
	}
	for _, d := range []string{oldRoot, newRoot, files} {
		if err := os.Mkdir(filepath.Join(scratch, d), 0o755); err != nil {
			return err
		}
	}
	if err := unix.PivotRoot(scratch, scratch+oldRoot); err != nil {
		return &os.PathError{Op: "pivot_root", Path: scratch, Err: err}
	}
	if err := unix.Chdir("/"); err != nil {
		return &os.PathError{Op: "chdir", Path: "/", Err: err}
	}
	phase("view_scratch_us")
	if err := linux.Mount("tmpfs", newRoot, "tmpfs", tmpfsFlags, "mode=0755,size=1m"); err != nil {
		return err
	}
	if err := mountTmpfs("/tmp", p.TmpBytes, "1777"); err != nil {
		return err
	}
	if err := mountTmpfs(p.Home, p.HomeBytes, "0700"); err != nil {
		return err
	}
	if err := os.Chown(newRoot+p.Home, p.UID, p.GID); err != nil {
		return err
	}

	binds := append([]plan.Bind(nil), p.Binds...)
	sort.SliceStable(binds, func(i, j int) bool { return depth(binds[i].Target) < depth(binds[j].Target) })
	for _, b := range binds {
		if err := bind(b); err != nil {
			return fmt.Errorf("making %s visible: %w", b.Target, err)
		}
	}
	phase("view_binds_us")
	if err := mountWorkspace(p, workspaceTree); err != nil {
		return fmt.Errorf("mounting the workspace: %w", err)
	}
	if err := mountProc(); err != nil {
		return err
	}
	if err := mountDev(); err != nil {
		return err
	}
	phase("view_proc_dev_us")
	if err := protectView(p); err != nil {
		return err
	}
	phase("view_protect_us")
	if err := writeIdentity(p); err != nil {
		return err
	}
	for _, h := range p.Hide {
		if err := hide(h); err != nil {
			return fmt.Errorf("hiding %s: %w", h, err)
		}
	}
	if err := linux.SetMountAttr(newRoot, attrRO, 0, false); err != nil {
		return err
	}
	phase("view_hide_us")
	if err := linux.PivotRoot(newRoot); err != nil {
		return err
	}
	phase("view_pivot_us")
	return nil
}

func depth(p string) int { return strings.Count(filepath.Clean(p), "/") }

func mountTmpfs(target string, size int64, mode string) error {
	dst := newRoot + target
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	data := "mode=" + mode
	if size > 0 {
		data += fmt.Sprintf(",size=%d", size)
	}
	return linux.Mount("tmpfs", dst, "tmpfs", tmpfsFlags, data)
}

// mkMountPoint creates dst (and its parents) as a directory or an empty
// file. Parents that already exist are left alone, so a mount point under
// an existing host bind needs no write to the host.
func mkMountPoint(dst string, dir bool) error {
	if _, err := os.Lstat(dst); err == nil {
		return nil
	}
	if dir {
		return os.MkdirAll(dst, 0o755)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	return f.Close()
}

func bind(b plan.Bind) error {
	dst := newRoot + b.Target
	if b.Kind == plan.BindSymlink {
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		return os.Symlink(b.Link, dst)
	}
	if err := mkMountPoint(dst, b.Kind == plan.BindDir); err != nil {
		return err
	}
	if b.FD > 0 {
		tree := os.NewFile(uintptr(b.FD), b.Source)
		err := linux.AttachTree(tree, dst)
		tree.Close()
		if err != nil {
			return err
		}
	} else if err := linux.Mount(oldRoot+b.Source, dst, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return err
	}
	attr := uint64(attrRO)
	if b.Writable {
		attr = attrRW
	}
	return linux.SetMountAttr(dst, attr, 0, true)
}

func mountWorkspace(p *plan.Plan, tree *os.File) error {
	dst := newRoot + p.Workspace
	if err := mkMountPoint(dst, true); err != nil {
		return err
	}
	if tree != nil {
		if err := linux.AttachTree(tree, dst); err != nil {
			return err
		}
	} else if err := linux.Mount(oldRoot+p.Workspace, dst, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return err
	}
	attr := uint64(attrRW)
	if !p.WorkspaceWritable {
		attr = attrRO
	}
	return linux.SetMountAttr(dst, attr, 0, true)
}

func mountProc() error {
	dst := newRoot + "/proc"
	if err := os.Mkdir(dst, 0o555); err != nil {
		return err
	}
	return linux.Mount("proc", dst, "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "")
}

func mountDev() error {
	dev := newRoot + "/dev"
	if err := os.Mkdir(dev, 0o755); err != nil {
		return err
	}
	if err := linux.Mount("tmpfs", dev, "tmpfs", unix.MS_NOSUID|unix.MS_NOEXEC, "mode=0755,size=64k"); err != nil {
		return err
	}
	for _, d := range devices {
		dst := dev + "/" + d
		if err := mkMountPoint(dst, false); err != nil {
			return err
		}
		if err := linux.Mount(oldRoot+"/dev/"+d, dst, "", unix.MS_BIND, ""); err != nil {
			return err
		}
		if err := linux.SetMountAttr(dst, unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NOEXEC, 0, false); err != nil {
			return err
		}
	}
	for _, d := range []string{"pts", "shm"} {
		if err := os.Mkdir(dev+"/"+d, 0o755); err != nil {
			return err
		}
	}
	if err := linux.Mount("devpts", dev+"/pts", "devpts", unix.MS_NOSUID|unix.MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620"); err != nil {
		return err
	}
	if err := linux.Mount("tmpfs", dev+"/shm", "tmpfs", tmpfsFlags, "mode=1777,size=64m"); err != nil {
		return err
	}
	links := map[string]string{
		"ptmx": "pts/ptmx", "fd": "/proc/self/fd", "stdin": "/proc/self/fd/0",
		"stdout": "/proc/self/fd/1", "stderr": "/proc/self/fd/2",
	}
	for name, target := range links {
		if err := os.Symlink(target, dev+"/"+name); err != nil {
			return err
		}
	}
	return linux.SetMountAttr(dev, unix.MOUNT_ATTR_RDONLY, 0, false)
}

// writeIdentity binds generated passwd and group files over the host's so
// that the session user has a name and a home (git and ssh look them up)
// and the host's user list is not shown.
func writeIdentity(p *plan.Plan) error {
	if _, err := os.Stat(newRoot + "/etc"); err != nil {
		return nil
	}
	passwd := fmt.Sprintf("root:x:0:0:root:/root:/bin/sh\n%s:x:%d:%d:cordon session:%s:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n", p.User, p.UID, p.GID, p.Home)
	group := fmt.Sprintf("root:x:0:\n%s:x:%d:\nnogroup:x:65534:\n", p.User, p.GID)
	if p.UID == 0 {
		passwd = fmt.Sprintf("%s:x:0:0:cordon session:%s:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n", p.User, p.Home)
		group = fmt.Sprintf("%s:x:0:\nnogroup:x:65534:\n", p.User)
	}
	for name, content := range map[string]string{"passwd": passwd, "group": group} {
		src := files + "/" + name
		if err := os.WriteFile(src, []byte(content), 0o644); err != nil {
			return err
		}
		dst := newRoot + "/etc/" + name
		if _, err := os.Lstat(dst); err != nil {
			continue
		}
		if err := linux.Mount(src, dst, "", unix.MS_BIND, ""); err != nil {
			return err
		}
		if err := linux.SetMountAttr(dst, attrRO, 0, false); err != nil {
			return err
		}
	}
	return nil
}

// hide covers path in the view with an empty read-only directory or file.
// The path is resolved inside the view (symlinks on the way, and a final
// symlink, lead to what the view shows there), so a credential reached
// through a link is covered where it really lies. A path that is not in
// the view is already hidden.
func hide(path string) error {
	dst, err := resolveInView(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	fi, err := os.Lstat(dst)
	if err != nil {
		return err
	}
	if fi.IsDir() {
		return linux.Mount("tmpfs", dst, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC|unix.MS_RDONLY, "mode=0000,size=4k")
	}
	empty := files + "/empty"
	if _, err := os.Stat(empty); err != nil {
		if err := os.WriteFile(empty, nil, 0o000); err != nil {
			return err
		}
	}
	if err := linux.Mount(empty, dst, "", unix.MS_BIND, ""); err != nil {
		return err
	}
	return linux.SetMountAttr(dst, attrRO|unix.MOUNT_ATTR_NOEXEC, 0, false)
}

// resolveInView resolves path as the view will see it (symlinks
// confined to the view's root) and returns the object's path from the
// scratch root, free of symlinks. The kernel resolves (openat2 with
// RESOLVE_IN_ROOT); the path is read back through the host's /proc,
// still mounted under the old root.
func resolveInView(path string) (string, error) {
	root, err := unix.Open(newRoot, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", &os.PathError{Op: "open", Path: newRoot, Err: err}
	}
	defer unix.Close(root)
	how := unix.OpenHow{Flags: unix.O_PATH | unix.O_CLOEXEC, Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS}
	fd, err := unix.Openat2(root, strings.TrimPrefix(path, "/"), &how)
	if err != nil {
		return "", &os.PathError{Op: "openat2", Path: path, Err: err}
	}
	defer unix.Close(fd)
	real, err := os.Readlink(fmt.Sprintf("%s/proc/self/fd/%d", oldRoot, fd))
	if err != nil {
		return "", err
	}
	if !strings.HasPrefix(real, newRoot+"/") {
		return "", fmt.Errorf("%s resolves outside the view (%s)", path, real)
	}
	return real, nil
}
