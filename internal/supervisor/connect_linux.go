package supervisor

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/cordon-sandbox/cordon/events"
	"github.com/cordon-sandbox/cordon/internal/linux"
	"github.com/cordon-sandbox/cordon/internal/plan"
	"github.com/cordon-sandbox/cordon/internal/proto"
	"github.com/cordon-sandbox/cordon/internal/seccomp"
)

// Every connect(2) of the session is made by the supervisor. The filter
// hands it over; the supervisor copies the address out of the caller's
// memory once, decides on that copy, takes the caller's socket with
// pidfd_getfd (the same socket, not a copy of it) and connects it
// itself, and answers the notification with the result. The kernel never
// runs the caller's own connect, so nothing the caller changes after the
// copy (the address bytes, or which socket its descriptor number names)
// can reach a connect that was not checked. A Continue could not give
// that: the kernel would read the caller's memory again.
//
// What the check decides:
//
//   - An IP address off loopback is refused with EPERM and a deny event.
//     The session's network namespace has no route off loopback, so the
//     kernel would refuse it too; the check adds the reason.
//   - A pathname unix socket is refused with EACCES and a deny event when
//     it lies on a read-only mount. Connecting to a socket is a write to
//     its server, and a read-only bind does not stop it in the kernel
//     (Landlock refuses it only from ABI 9, LANDLOCK_ACCESS_FS_RESOLVE_UNIX),
//     so a host daemon listening in a directory the view shows read-only
//     (/etc, /usr, /opt, ...) would otherwise be reachable.
//   - Everything else is connected as asked.
//
// A pathname is resolved as the caller would resolve it (its root, its
// working directory, and, for a root-started session, the executor's
// uid and gid for permission checks on the way), opened with O_PATH,
// checked on that descriptor, and connected through /proc/self/fd, so
// the file checked is the file connected to.
//
// What changes for the caller: the server sees the supervisor's pid in
// SO_PEERCRED (and uid 0, the session's root, for a root-started
// session), and abstract unix sockets are reached from outside the
// executor's Landlock domain (their scoping mattered only between the
// session's own processes: the network namespace, which abstract names
// live in, holds nothing else).

// maxSockaddr is sizeof(struct sockaddr_storage): the kernel refuses a
// longer address with EINVAL before looking at it.
const maxSockaddr = 128

// connect answers a connect notification. It returns at once: a connect
// can block (a full listen backlog), and the notification loop must not.
func (n *notifier) connect(note seccomp.Notification) {
	go func() {
		var err error
		if errno := n.connectFor(note); errno == 0 {
			err = seccomp.Succeed(n.fd, note.ID, 0)
		} else {
			err = seccomp.Respond(n.fd, note.ID, errno)
		}
		if err != nil && !errors.Is(err, seccomp.ErrTargetGone) {
			fmt.Fprintf(os.Stderr, "cordon supervisor: answering seccomp notification: %v\n", err)
			os.Exit(3)
		}
	}()
}

// connectFor performs the notified connect(fd, addr, len) and returns its
// errno (0 for success).
func (n *notifier) connectFor(note seccomp.Notification) unix.Errno {
	size := note.Args[2]
	if size > maxSockaddr {
		return unix.EINVAL
	}
	addr := make([]byte, size)
	if size > 0 {
		local := []unix.Iovec{{Base: &addr[0], Len: size}}
		remote := []unix.RemoteIovec{{Base: uintptr(note.Args[1]), Len: int(size)}}
		if m, err := unix.ProcessVMReadv(int(note.PID), local, remote, 0); err != nil || m != len(addr) {
			return unix.EFAULT
		}
	}
	pidfd, err := unix.PidfdOpen(int(note.PID), unix.PIDFD_THREAD)
	if err != nil {
		return errnoOf(err, unix.ESRCH)
	}
	defer unix.Close(pidfd)
	// The pid named the notifying thread when the address was read only
	// if the notification is still pending now that the pidfd pins it.
	if !seccomp.Valid(n.fd, note.ID) {
		return unix.ESRCH
	}
	sock, err := unix.PidfdGetfd(pidfd, int(int32(note.Args[0])), 0)
	if err != nil {
		return errnoOf(err, unix.EBADF)
	}
	defer unix.Close(sock)

	if path, ok := unixPath(addr); ok {
		return n.connectUnix(note, sock, path)
	}
	if dst, ok := sockaddrIP(addr); ok {
		ip := dst.Addr().Unmap()
		if !ip.IsLoopback() && !ip.IsUnspecified() {
			n.refuseDirect(note, dst)
			return unix.EPERM
		}
		if ip == netip.AddrFrom4([4]byte{127, 0, 0, 1}) && dst.Port() == plan.ProxyPort && n.s.bridge != nil {
			n.s.bridge.expect(n.attribute(int(note.PID)))
		}
	}
	return rawConnect(sock, addr)
}

// connectUnix connects sock to the pathname unix socket path, resolved as
// the notifying thread would, unless it lies on a read-only mount.
func (n *notifier) connectUnix(note seccomp.Notification, sock int, path string) unix.Errno {
	base := "cwd"
	if path[0] == '/' {
		base = "root"
	}
	dir, err := unix.Open("/proc/"+strconv.Itoa(int(note.PID))+"/"+base, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return errnoOf(err, unix.ESRCH)
	}
	defer unix.Close(dir)
	if !seccomp.Valid(n.fd, note.ID) {
		return unix.ESRCH
	}

	// Resolve and connect with the executor's file-system ids, so that
	// directory and socket permissions are checked as for the caller.
	// The thread is locked for it and dies with this goroutine unless
	// the ids are set back.
	runtime.LockOSThread()
	p := n.s.plan
	if p.UID != 0 {
		if err := linux.SetFSIDs(p.UID, p.GID); err != nil {
			fmt.Fprintf(os.Stderr, "cordon supervisor: connect for the executor: %v\n", err)
			return unix.EACCES
		}
	}
	errno := n.connectResolved(note, sock, dir, path)
	if p.UID == 0 || linux.SetFSIDs(0, 0) == nil {
		runtime.UnlockOSThread()
	}
	return errno
}

func (n *notifier) connectResolved(note seccomp.Notification, sock, dir int, path string) unix.Errno {
	var fd int
	var err error
	if path[0] == '/' {
		fd, err = unix.Openat2(dir, path, &unix.OpenHow{Flags: unix.O_PATH | unix.O_CLOEXEC, Resolve: unix.RESOLVE_IN_ROOT})
	} else {
		fd, err = unix.Openat(dir, path, unix.O_PATH|unix.O_CLOEXEC, 0)
	}
	if err != nil {
		return errnoOf(err, unix.ENOENT)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	var fs unix.Statfs_t
	if err := unix.Fstat(fd, &st); err != nil {
		return errnoOf(err, unix.EIO)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFSOCK {
		return unix.ECONNREFUSED // what the kernel answers for a file that is not a socket
	}
	if err := unix.Fstatfs(fd, &fs); err != nil {
		return errnoOf(err, unix.EIO)
	}
	if fs.Flags&unix.ST_RDONLY != 0 {
		n.refuseReadOnlySocket(note, fd, path)
		return unix.EACCES
	}
	self := "/proc/self/fd/" + strconv.Itoa(fd)
	return rawConnect(sock, sockaddrUnix(self))
}

// refuseReadOnlySocket reports a connect to a socket on a read-only mount.
func (n *notifier) refuseReadOnlySocket(note seccomp.Notification, fd int, asked string) {
	call := n.attribute(int(note.PID))
	target, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(fd))
	if err != nil {
		target = asked
	}
	e := &events.Event{
		Time: time.Now(), Session: n.s.session(), Call: call,
		Kind: events.Deny, Layer: events.LayerPolicy, Op: "fs.connect", Target: target,
		Rule:   "policy.filesystem.read_only",
		Remedy: &events.Remedy{Capability: "fs.write:" + target},
		Detail: map[string]any{
			"pid": note.PID, "syscall": "connect",
			"reason": target + " is a unix socket on a read-only path of this session: connecting to a socket writes to the program behind it, so cordon refuses it where the session may not write (the kernel would not)",
		},
	}
	_ = n.s.host.Send(&proto.Response{Call: call, Kind: proto.KindEvent, Event: e})
}

// refuseDirect reports a connect to an address off loopback.
func (n *notifier) refuseDirect(note seccomp.Notification, dst netip.AddrPort) {
	call := n.attribute(int(note.PID))
	reason := fmt.Sprintf("direct connection to %s refused: the session reaches the network only through cordon's egress proxy at http://127.0.0.1:%d (HTTP_PROXY, HTTPS_PROXY and ALL_PROXY name it)", dst, plan.ProxyPort)
	e := &events.Event{
		Time: time.Now(), Session: n.s.session(), Call: call,
		Kind: events.Deny, Layer: events.LayerNet, Op: "net.connect", Target: dst.String(),
		Rule:   "network.direct",
		Detail: map[string]any{"pid": note.PID, "reason": reason},
	}
	_ = n.s.host.Send(&proto.Response{Call: call, Kind: proto.KindEvent, Event: e})
}

// unixPath returns the path of a struct sockaddr_un that names a file
// (not an abstract name, not an unnamed address): the bytes after the
// family up to the first NUL, as the kernel reads them.
func unixPath(addr []byte) (string, bool) {
	if len(addr) <= 2 || binary.NativeEndian.Uint16(addr) != unix.AF_UNIX || addr[2] == 0 {
		return "", false
	}
	p := addr[2:]
	for i, c := range p {
		if c == 0 {
			p = p[:i]
			break
		}
	}
	return string(p), true
}

// sockaddrIP decodes a struct sockaddr_in or sockaddr_in6.
func sockaddrIP(b []byte) (netip.AddrPort, bool) {
	if len(b) < 2 {
		return netip.AddrPort{}, false
	}
	port := func() uint16 { return binary.BigEndian.Uint16(b[2:4]) }
	switch binary.NativeEndian.Uint16(b) {
	case unix.AF_INET:
		if len(b) < unix.SizeofSockaddrInet4 {
			return netip.AddrPort{}, false
		}
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[4:8])), port()), true
	case unix.AF_INET6:
		if len(b) < unix.SizeofSockaddrInet6 {
			return netip.AddrPort{}, false
		}
		return netip.AddrPortFrom(netip.AddrFrom16([16]byte(b[8:24])), port()), true
	}
	return netip.AddrPort{}, false
}

// sockaddrUnix encodes a struct sockaddr_un for path, with its length
// covering the path and its NUL.
func sockaddrUnix(path string) []byte {
	b := make([]byte, 2, 2+len(path)+1)
	binary.NativeEndian.PutUint16(b, unix.AF_UNIX)
	b = append(b, path...)
	return append(b, 0)
}

// rawConnect is connect(2) with an address as bytes, retried on EINTR
// (a restarted connect of a socket already connecting reports EALREADY,
// as the caller's own would).
func rawConnect(sock int, addr []byte) unix.Errno {
	var p unsafe.Pointer
	if len(addr) > 0 {
		p = unsafe.Pointer(&addr[0])
	}
	for {
		_, _, e := unix.Syscall(unix.SYS_CONNECT, uintptr(sock), uintptr(p), uintptr(len(addr)))
		runtime.KeepAlive(addr)
		if e != unix.EINTR {
			return e
		}
	}
}

// errnoOf is err's errno, or fallback when it has none.
func errnoOf(err error, fallback unix.Errno) unix.Errno {
	var e unix.Errno
	if errors.As(err, &e) {
		return e
	}
	return fallback
}
