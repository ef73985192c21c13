package supervisor

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cordon-sandbox/cordon/events"
	"github.com/cordon-sandbox/cordon/internal/linux"
	"github.com/cordon-sandbox/cordon/internal/proto"
	"github.com/cordon-sandbox/cordon/internal/ruleset"
	"github.com/cordon-sandbox/cordon/internal/seccomp"
)

// The write observer. The executor's seccomp filter hands the supervisor
// every system call that writes by path (seccomp.Observed). The
// supervisor reads the path from the caller's memory, resolves it in the
// view (which it shares: same mount namespace, same root), tells whether
// the kernel will refuse the write, reports it if so, and always answers
// Continue: the kernel, the read-only mounts and Landlock decide, never
// the observer. Two kinds of refusal are told apart:
//
//   - read-only: the object is on a read-only mount of the view (a
//     filesystem.read bind, the view's root, /dev). The kernel says EROFS,
//     or EACCES for an existing file of an id the session does not map,
//     before Landlock is asked, so Landlock's audit log never has it.
//     Rule policy.filesystem.read_only.
//   - landlock: a writable mount, but outside what the session's ruleset
//     grants (ruleset.Writable): in practice /proc. When the host reads
//     the kernel's audit log (plan.LandlockAudit), the kernel's own record
//     becomes the event and the observer only counts the refusals it
//     expects, so that the host knows to wait for their records
//     (proto.Result.LandlockPending); without it (rootless) the observer's
//     prediction is the event. Rule landlock.filesystem.
//
// So every refused write is one event, from one of the two. The check is
// report-only and racy by nature (TOCTOU): the caller, or another of its
// threads, can change the path in memory or the files it names between
// the check and the kernel's own lookup. That can cost a report or make
// a wrong one, never change what the kernel allows. A path through a
// magic link (/proc/PID/fd/N, /dev/stdout) is not followed and not
// reported; the executor's own calls (file tools) are not observed, since
// the supervisor reports their refusals from their results.

// AT_* values of the observed calls' flags arguments.
const (
	atFDCWD       = -100
	atRemoveDir   = 0x200
	atSymlinkNoFl = 0x100
	atEmptyPath   = 0x1000
	oNoFollow     = 0x20000
	oExcl         = 0x80
	pathMax       = 4096
)

// writeIntent is one observed call, decoded: the paths it names and how
// it writes them.
type writeIntent struct {
	syscall string
	kind    intentKind
	flags   uint64 // open flags for intentOpen
	mode    uint32 // mknod's mode
	follow  bool   // the last component is followed if it is a symlink
	dirfd   int    // of path
	path    string
	dirfd2  int // of path2 (rename, link: the new name)
	path2   string
}

type intentKind int

const (
	intentOpen     intentKind = iota // open family: flags decide
	intentCreate                     // mkdir, mknod, symlink: path2 is made
	intentRemove                     // unlink, rmdir
	intentRename                     // path → path2
	intentLink                       // path2 made as a link to path
	intentTruncate                   // truncate
	intentChmod                      // chmod family
)

// observe answers a notification of seccomp.Observed: it reports the
// write if the kernel will refuse it, then lets it run.
func (n *notifier) observe(note seccomp.Notification) {
	if e, pending := n.judge(note); e != nil || pending {
		call := n.attribute(int(note.PID))
		if pending {
			n.expect(call)
		} else {
			e.Call = call
			_ = n.s.host.Send(&proto.Response{Call: call, Kind: proto.KindEvent, Event: e})
		}
	}
	if err := seccomp.Continue(n.fd, note.ID); err != nil && !errors.Is(err, seccomp.ErrTargetGone) {
		fmt.Fprintf(os.Stderr, "cordon supervisor: answering seccomp notification: %v\n", err)
		os.Exit(3)
	}
}

// judge returns the event of a write the kernel will refuse, or pending
// when the refusal is Landlock's and the host reads the kernel's record
// of it. It returns neither when the write will go ahead, when the
// target does not exist for another reason (ENOENT, EEXIST, EXDEV: not a
// denial), or when it cannot tell.
func (n *notifier) judge(note seccomp.Notification) (e *events.Event, pending bool) {
	tid := int(note.PID)
	in, ok := decodeIntent(note, tid)
	if !ok || !seccomp.Valid(n.fd, note.ID) {
		return nil, false
	}
	v, ok := n.verdict(tid, in)
	if !ok || n.ofExecutor(tid) {
		return nil, false
	}
	if v.rule == ruleLandlock && n.x.plan.LandlockAudit {
		return nil, true
	}
	e = &events.Event{
		Time: time.Now(), Session: n.s.session(), Kind: events.Deny,
		Op: v.op, Target: v.target, Rule: v.rule,
		Detail: map[string]any{"pid": note.PID, "syscall": in.syscall, "reason": v.reason},
	}
	if v.rule == ruleReadOnly {
		e.Layer = events.LayerPolicy
	} else {
		e.Layer = events.LayerLandlock
		e.Detail["source"] = "observer"
	}
	if c := writeCapability(v.target); c != "" {
		e.Remedy = &events.Remedy{Capability: c}
	}
	if v.rule == ruleReadOnly {
		protectDenial(n.x.plan, e, v.target) // policy.workspace.protect
	}
	return e, false
}

// writeCapability is the capability that would let a session write path:
// none for the session's own /proc and /dev, which no grant changes.
func writeCapability(path string) string {
	for _, p := range []string{"/proc", "/dev"} {
		if path == p || strings.HasPrefix(path, p+"/") {
			return ""
		}
	}
	return "fs.write:" + path
}

// ofExecutor reports whether thread tid belongs to the executor itself:
// its file tools' refusals are reported from their results.
func (n *notifier) ofExecutor(tid int) bool {
	if tid == n.x.pid {
		return true
	}
	var st unix.Stat_t
	return unix.Stat("/proc/"+strconv.Itoa(n.x.pid)+"/task/"+strconv.Itoa(tid), &st) == nil
}

// decodeIntent reads the observed call's arguments, and the paths they
// point to from the caller's memory.
func decodeIntent(note seccomp.Notification, tid int) (writeIntent, bool) {
	a := note.Args
	fd := func(i int) int { return int(int32(a[i])) }
	in := writeIntent{syscall: seccomp.Name(note.Nr), dirfd: atFDCWD, dirfd2: atFDCWD, follow: true}
	var p1, p2 uint64 // addresses of path and path2; 0 for none
	switch in.syscall {
	case "open":
		in.kind, p1, in.flags = intentOpen, a[0], a[1]
	case "openat":
		in.kind, in.dirfd, p1, in.flags = intentOpen, fd(0), a[1], a[2]
	case "openat2":
		var how [8]byte // struct open_how starts with u64 flags
		if a[3] < 8 || !readMem(tid, a[2], how[:]) {
			return in, false
		}
		in.kind, in.dirfd, p1, in.flags = intentOpen, fd(0), a[1], binary.NativeEndian.Uint64(how[:])
		if in.flags&(unix.O_WRONLY|unix.O_RDWR|unix.O_CREAT|unix.O_TRUNC) == 0 {
			return in, false // a read
		}
	case "creat":
		in.kind, p1, in.flags = intentOpen, a[0], unix.O_WRONLY|unix.O_CREAT|unix.O_TRUNC
	case "mkdir":
		in.kind, p2, in.mode = intentCreate, a[0], unix.S_IFDIR
	case "mkdirat":
		in.kind, in.dirfd2, p2, in.mode = intentCreate, fd(0), a[1], unix.S_IFDIR
	case "mknod":
		in.kind, p2, in.mode = intentCreate, a[0], uint32(a[1])
	case "mknodat":
		in.kind, in.dirfd2, p2, in.mode = intentCreate, fd(0), a[1], uint32(a[2])
	case "symlink":
		in.kind, p2, in.mode = intentCreate, a[1], unix.S_IFLNK
	case "symlinkat":
		in.kind, in.dirfd2, p2, in.mode = intentCreate, fd(1), a[2], unix.S_IFLNK
	case "unlink":
		in.kind, p1 = intentRemove, a[0]
	case "rmdir":
		in.kind, p1, in.mode = intentRemove, a[0], unix.S_IFDIR
	case "unlinkat":
		in.kind, in.dirfd, p1 = intentRemove, fd(0), a[1]
		if a[2]&atRemoveDir != 0 {
			in.mode = unix.S_IFDIR
		}
	case "rename":
		in.kind, p1, p2 = intentRename, a[0], a[1]
	case "renameat", "renameat2":
		in.kind, in.dirfd, p1, in.dirfd2, p2 = intentRename, fd(0), a[1], fd(2), a[3]
	case "link":
		in.kind, p1, p2 = intentLink, a[0], a[1]
	case "linkat":
		in.kind, in.dirfd, p1, in.dirfd2, p2 = intentLink, fd(0), a[1], fd(2), a[3]
	case "truncate":
		in.kind, p1 = intentTruncate, a[0]
	case "chmod":
		in.kind, p1 = intentChmod, a[0]
	case "fchmodat", "fchmodat2":
		in.kind, in.dirfd, p1 = intentChmod, fd(0), a[1]
		if in.syscall == "fchmodat2" && a[3]&atEmptyPath != 0 {
			return in, false // the descriptor itself, opened already
		}
		in.follow = !(in.syscall == "fchmodat2" && a[3]&atSymlinkNoFl != 0)
	default:
		return in, false
	}
	if in.kind == intentOpen && in.flags&oNoFollow != 0 {
		in.follow = false
	}
	var ok bool
	if p1 != 0 {
		if in.path, ok = readPath(tid, p1); !ok {
			return in, false
		}
	}
	if p2 != 0 {
		if in.path2, ok = readPath(tid, p2); !ok {
			return in, false
		}
	}
	return in, true
}

// readMem reads len(buf) bytes at addr of process pid.
func readMem(pid int, addr uint64, buf []byte) bool {
	if len(buf) == 0 || addr == 0 {
		return false
	}
	local := []unix.Iovec{{Base: &buf[0], Len: uint64(len(buf))}}
	remote := []unix.RemoteIovec{{Base: uintptr(addr), Len: len(buf)}}
	m, err := unix.ProcessVMReadv(pid, local, remote, 0)
	return err == nil && m == len(buf)
}

// readPath reads a NUL-terminated path at addr of process pid, a page at
// most at a time (a read across into an unmapped page fails whole).
func readPath(pid int, addr uint64) (string, bool) {
	const page = 4096
	var out []byte
	for len(out) < pathMax {
		chunk := page - int(addr%page)
		buf := make([]byte, chunk)
		if !readMem(pid, addr, buf) {
			return "", false
		}
		if i := strings.IndexByte(string(buf), 0); i >= 0 {
			out = append(out, buf[:i]...)
			if len(out) == 0 {
				return "", false // ENOENT, not a write
			}
			return string(out), true
		}
		out = append(out, buf...)
		addr += uint64(chunk)
	}
	return "", false // ENAMETOOLONG
}

// Rules of the observer's events.
const (
	ruleReadOnly = "policy.filesystem.read_only"
	ruleLandlock = "landlock.filesystem"
)

// writeVerdict is a refusal the observer foresees.
type writeVerdict struct {
	rule, op, target, reason string
}

// place is a resolved name: its parent directory (open O_PATH), the last
// component, and what that is, if it exists.
type place struct {
	parent int
	name   string
	asked  string // the path as the caller named it, made absolute
	exists bool
	stx    unix.Statx_t // of the entry, not followed: type and mount
}

func (p *place) close() {
	if p.parent >= 0 {
		unix.Close(p.parent)
		p.parent = -1
	}
}

// verdict resolves the intent's paths in the view and decides.
func (n *notifier) verdict(tid int, in writeIntent) (writeVerdict, bool) {
	n.viewOnce.Do(n.initView)
	w := n.view.writable
	switch in.kind {
	case intentOpen, intentTruncate, intentChmod:
		p, ok := n.resolvePlace(tid, in.dirfd, in.path)
		if !ok {
			return writeVerdict{}, false
		}
		defer func() { p.close() }() // p may be replaced below
		if n.plain(p.parent) && (!p.exists || (!p.isLink() && n.view.plain[mountIDOf(p.stx)])) {
			return writeVerdict{}, false
		}
		if p.isLink() && in.follow && in.kind == intentOpen && in.flags&unix.O_CREAT != 0 {
			if q, ok := n.dangling(p); ok {
				p = q // the create lands where the dangling link points
			} else if p, ok = n.resolvePlace(tid, in.dirfd, in.path); !ok {
				return writeVerdict{}, false
			}
		}
		if !p.exists {
			if in.kind != intentOpen || in.flags&unix.O_CREAT == 0 {
				return writeVerdict{}, false // ENOENT
			}
			return creation(p, "fs.make_reg", w)
		}
		if in.kind == intentOpen && in.flags&(unix.O_CREAT|oExcl) == unix.O_CREAT|oExcl {
			return writeVerdict{}, false // EEXIST
		}
		obj, ok := p.object(in.follow)
		if !ok {
			return writeVerdict{}, false
		}
		defer unix.Close(obj.fd)
		switch in.kind {
		case intentOpen:
			writes := in.flags&(unix.O_WRONLY|unix.O_RDWR) != 0 || in.flags&unix.O_TRUNC != 0
			if !writes || obj.st.Mode&unix.S_IFMT == unix.S_IFDIR {
				return writeVerdict{}, false // a read-only create of an existing file, or EISDIR
			}
		case intentTruncate:
			if obj.st.Mode&unix.S_IFMT != unix.S_IFREG {
				return writeVerdict{}, false
			}
		}
		special := obj.st.Mode&unix.S_IFMT != unix.S_IFREG && obj.st.Mode&unix.S_IFMT != unix.S_IFDIR
		if readOnly(obj.fd) {
			if special && in.kind != intentChmod {
				return writeVerdict{}, false // devices and fifos open for writing on read-only mounts
			}
			op := "fs.write"
			if in.kind == intentChmod {
				op = "fs.chmod"
			}
			return readOnlyVerdict(op, p.asked), true
		}
		if in.kind == intentChmod {
			return writeVerdict{}, false // not Landlock's
		}
		// The ruleset first: nearly every write it allows, and asking
		// it costs a readlink where the permission check reads /proc.
		if w.Allows(fdPath(obj.fd)) || !mayWrite(tid, &obj.st) {
			return writeVerdict{}, false // allowed, or refused by permissions first
		}
		return landlockVerdict("fs.write", p.asked), true
	case intentCreate:
		p, ok := n.resolvePlace(tid, in.dirfd2, in.path2)
		if !ok {
			return writeVerdict{}, false
		}
		defer p.close()
		if p.exists || n.plain(p.parent) {
			return writeVerdict{}, false // EEXIST, or a place the session may write
		}
		return creation(p, makeOp(in.mode), w)
	case intentRemove:
		p, ok := n.resolvePlace(tid, in.dirfd, in.path)
		if !ok {
			return writeVerdict{}, false
		}
		defer p.close()
		if n.plain(p.parent) {
			return writeVerdict{}, false
		}
		op := "fs.remove_file"
		if in.mode == unix.S_IFDIR {
			op = "fs.remove_dir"
		}
		if readOnly(p.parent) {
			return readOnlyVerdict(op, p.asked), true // EROFS even when it does not exist
		}
		if p.exists && !w.Allows(fdPath(p.parent)) {
			return landlockVerdict(op, p.asked), true
		}
	case intentRename, intentLink:
		from, ok := n.resolvePlace(tid, in.dirfd, in.path)
		if !ok {
			return writeVerdict{}, false
		}
		defer from.close()
		to, ok := n.resolvePlace(tid, in.dirfd2, in.path2)
		if !ok || !from.exists {
			if ok {
				to.close()
			}
			return writeVerdict{}, false
		}
		defer to.close()
		if n.plain(from.parent) && n.plain(to.parent) {
			return writeVerdict{}, false
		}
		if mountID(from.parent) != mountID(to.parent) {
			return writeVerdict{}, false // EXDEV: mv copies instead, and that is observed
		}
		op := "fs.rename"
		if in.kind == intentLink {
			op = "fs.link"
			if to.exists {
				return writeVerdict{}, false // EEXIST
			}
		}
		if readOnly(to.parent) {
			return readOnlyVerdict(op, to.asked), true
		}
		if in.kind == intentRename && !w.Allows(fdPath(from.parent)) {
			return landlockVerdict(op, from.asked), true
		}
		if !w.Allows(fdPath(to.parent)) {
			return landlockVerdict(op, to.asked), true
		}
	}
	return writeVerdict{}, false
}

// viewFacts is what the observer knows of the view once: its root, the
// ruleset's writable places, and the mounts that are writable and
// granted whole by the ruleset (their root is a granted directory), where
// every write is allowed by both and the observer need look no further.
type viewFacts struct {
	root     int
	writable ruleset.Writable
	plain    map[uint64]bool
}

func (n *notifier) initView() {
	v := &n.view
	v.writable = ruleset.WritableOf(n.x.plan)
	v.plain = map[uint64]bool{}
	root, err := unix.Open("/", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		root = -1
	}
	v.root = root
	for _, d := range v.writable.Dirs() {
		var stx unix.Statx_t
		if unix.Statx(unix.AT_FDCWD, d, unix.AT_SYMLINK_NOFOLLOW, unix.STATX_MNT_ID, &stx) != nil ||
			stx.Attributes_mask&unix.STATX_ATTR_MOUNT_ROOT == 0 || stx.Attributes&unix.STATX_ATTR_MOUNT_ROOT == 0 {
			continue
		}
		var fs unix.Statfs_t
		if unix.Statfs(d, &fs) != nil || fs.Flags&unix.ST_RDONLY != 0 {
			continue
		}
		if id := mountIDOf(stx); id != 0 {
			v.plain[id] = true
		}
	}
}

// plain reports whether directory fd lies on a mount where every write
// is allowed.
func (n *notifier) plain(fd int) bool { return n.view.plain[mountID(fd)] }

func mountIDOf(stx unix.Statx_t) uint64 {
	if stx.Mask&unix.STATX_MNT_ID == 0 {
		return 0
	}
	return stx.Mnt_id
}

// creation decides the making of a new entry p.name in p.parent.
func creation(p place, op string, w ruleset.Writable) (writeVerdict, bool) {
	if readOnly(p.parent) {
		return readOnlyVerdict(op, p.asked), true
	}
	if !w.Allows(fdPath(p.parent)) {
		return landlockVerdict(op, p.asked), true
	}
	return writeVerdict{}, false
}

func readOnlyVerdict(op, target string) writeVerdict {
	return writeVerdict{rule: ruleReadOnly, op: op, target: target,
		reason: target + " is read-only in this session: outside the workspace, host paths are shown read-only (filesystem.read), and so are the view's root and /dev"}
}

func landlockVerdict(op, target string) writeVerdict {
	return writeVerdict{rule: ruleLandlock, op: op, target: target,
		reason: target + " is outside what this session may write (the workspace, /tmp, $HOME, /dev/shm and filesystem.write paths)"}
}

// makeOp names the making of an entry of type mode.
func makeOp(mode uint32) string {
	switch mode & unix.S_IFMT {
	case unix.S_IFDIR:
		return "fs.make_dir"
	case unix.S_IFLNK:
		return "fs.make_sym"
	case unix.S_IFIFO:
		return "fs.make_fifo"
	case unix.S_IFCHR:
		return "fs.make_char"
	case unix.S_IFBLK:
		return "fs.make_block"
	case unix.S_IFSOCK:
		return "fs.make_sock"
	}
	return "fs.make_reg"
}

// resolvePlace resolves the directory part of path from the caller's
// point of view: from its cwd, from its descriptor dirfd, or from the
// root, which is the supervisor's own. /proc/self and /proc/thread-self
// are the caller's, not the supervisor's. Magic links are not followed.
func (n *notifier) resolvePlace(tid int, dirfd int, path string) (place, bool) {
	p := place{parent: -1}
	if path == "" {
		return p, false
	}
	proc := "/proc/" + strconv.Itoa(tid)
	for _, self := range []string{"/proc/thread-self", "/proc/self"} {
		if path == self || strings.HasPrefix(path, self+"/") {
			path = proc + path[len(self):]
		}
	}
	base, err := n.view.root, error(nil)
	switch {
	case strings.HasPrefix(path, "/"):
	case dirfd == atFDCWD:
		base, err = unix.Open(proc+"/cwd", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	default:
		base, err = unix.Open(proc+"/fd/"+strconv.Itoa(dirfd), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	}
	if err != nil {
		return p, false
	}
	if base != n.view.root {
		defer unix.Close(base)
	}
	return resolveFrom(base, path)
}

// resolveFrom resolves the directory part of path from directory base.
func resolveFrom(base int, path string) (place, bool) {
	p := place{parent: -1}
	trimmed := strings.TrimRight(path, "/")
	if trimmed == "" {
		return p, false // "/" itself
	}
	dir, name := filepath.Split(trimmed)
	if name == "." || name == ".." {
		return p, false
	}
	if dir == "" {
		dir = "."
	}
	p.asked = path
	if !strings.HasPrefix(path, "/") {
		p.asked = filepath.Join(fdPath(base), path)
	}
	how := unix.OpenHow{Flags: unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC, Resolve: unix.RESOLVE_NO_MAGICLINKS}
	var err error
	if p.parent, err = unix.Openat2(base, dir, &how); err != nil {
		p.parent = -1
		return p, false // ENOENT, ENOTDIR, ELOOP: not a write that reaches a mount
	}
	p.name = name
	err = unix.Statx(p.parent, name, unix.AT_SYMLINK_NOFOLLOW, unix.STATX_TYPE|unix.STATX_MNT_ID, &p.stx)
	switch {
	case err == nil:
		p.exists = true
	case !errors.Is(err, unix.ENOENT):
		p.close()
		return p, false
	}
	return p, true
}

// isLink reports whether the entry p names is a symlink.
func (p place) isLink() bool { return p.exists && p.stx.Mode&unix.S_IFMT == unix.S_IFLNK }

// dangling follows the symlink p names to where an O_CREAT open would
// create its file: the place its target names, when that does not exist
// (a dangling link). It closes p. ok is false when the target exists, or
// after 8 links (ELOOP).
func (n *notifier) dangling(p place) (place, bool) {
	for range 8 {
		buf := make([]byte, pathMax)
		m, err := unix.Readlinkat(p.parent, p.name, buf)
		if err != nil {
			p.close()
			return place{parent: -1}, false
		}
		target := string(buf[:m])
		if target == "/proc" || strings.HasPrefix(target, "/proc/") || onProc(p.parent) {
			// /dev/stdout and the like: /proc/self here would be the
			// supervisor, and /proc/PID/fd/N are magic links.
			p.close()
			return place{parent: -1}, false
		}
		base := n.view.root
		if !strings.HasPrefix(target, "/") {
			base = p.parent
		}
		q, ok := resolveFrom(base, target)
		if ok && !strings.HasPrefix(target, "/") {
			q.asked = filepath.Join(filepath.Dir(p.asked), target)
		}
		p.close()
		if !ok || (q.exists && !q.isLink()) {
			q.close()
			return place{parent: -1}, false
		}
		if !q.exists {
			return q, true
		}
		p = q
	}
	p.close()
	return place{parent: -1}, false
}

// object is an existing entry, opened O_PATH.
type object struct {
	fd int
	st unix.Stat_t
}

// object opens the existing entry p names, through a final symlink when
// follow is set.
func (p place) object(follow bool) (object, bool) {
	flags := uint64(unix.O_PATH | unix.O_CLOEXEC)
	if !follow {
		flags |= unix.O_NOFOLLOW
	}
	how := unix.OpenHow{Flags: flags, Resolve: unix.RESOLVE_NO_MAGICLINKS}
	fd, err := unix.Openat2(p.parent, p.name, &how)
	if err != nil {
		return object{}, false // a dangling symlink: the create goes where it points, not judged
	}
	o := object{fd: fd}
	if unix.Fstat(fd, &o.st) != nil {
		unix.Close(fd)
		return object{}, false
	}
	return o, true
}

// onProc reports whether fd lies on a procfs.
func onProc(fd int) bool {
	var s unix.Statfs_t
	return unix.Fstatfs(fd, &s) == nil && s.Type == unix.PROC_SUPER_MAGIC
}

// readOnly reports whether the mount of the object fd is read-only.
func readOnly(fd int) bool {
	var s unix.Statfs_t
	return unix.Fstatfs(fd, &s) == nil && s.Flags&unix.ST_RDONLY != 0
}

func mountID(fd int) uint64 {
	var st unix.Statx_t
	if unix.Statx(fd, "", unix.AT_EMPTY_PATH, unix.STATX_MNT_ID, &st) != nil {
		return 0
	}
	return mountIDOf(st)
}

// fdPath is where the supervisor's descriptor fd lies in the view.
func fdPath(fd int) string {
	p, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(fd))
	if err != nil {
		return ""
	}
	return p
}

// mayWrite checks the file permission bits of st for writing by the
// thread tid (owner, group, other; no ACLs, no capabilities: the session
// has none). The kernel checks them before Landlock on an existing file,
// so a file they refuse is not Landlock's refusal.
func mayWrite(tid int, st *unix.Stat_t) bool {
	b, err := linux.ReadProcFile("/proc/" + strconv.Itoa(tid) + "/status")
	if err != nil {
		return false
	}
	var fsuid, fsgid int = -1, -1
	var groups []string
	for _, line := range strings.Split(string(b), "\n") {
		k, v, _ := strings.Cut(line, ":")
		f := strings.Fields(v)
		switch {
		case k == "Uid" && len(f) == 4:
			fsuid, _ = strconv.Atoi(f[3])
		case k == "Gid" && len(f) == 4:
			fsgid, _ = strconv.Atoi(f[3])
		case k == "Groups":
			groups = f
		}
	}
	switch {
	case int(st.Uid) == fsuid:
		return st.Mode&0o200 != 0
	case int(st.Gid) == fsgid || containsID(groups, int(st.Gid)):
		return st.Mode&0o020 != 0
	}
	return st.Mode&0o002 != 0
}

func containsID(ids []string, id int) bool {
	for _, s := range ids {
		if n, err := strconv.Atoi(s); err == nil && n == id {
			return true
		}
	}
	return false
}
