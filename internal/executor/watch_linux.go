package executor

import (
	"errors"
	"os"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cordon-sandbox/cordon/internal/proto"
)

// pipes are a command's stdout and stderr. The read ends are the
// executor's, non-blocking; the write ends are the command's, blocking as
// a command expects, and closed here once it has its copies. A closed
// end is -1.
type pipes struct {
	outR, outW, errR, errW int
}

func newPipes() (*pipes, error) {
	p := &pipes{-1, -1, -1, -1}
	var fds [2]int
	for _, ends := range []*[2]*int{{&p.outR, &p.outW}, {&p.errR, &p.errW}} {
		if err := unix.Pipe2(fds[:], unix.O_CLOEXEC); err != nil {
			p.close()
			return nil, os.NewSyscallError("pipe2", err)
		}
		*ends[0], *ends[1] = fds[0], fds[1]
		if err := unix.SetNonblock(fds[0], true); err != nil {
			p.close()
			return nil, os.NewSyscallError("fcntl", err)
		}
	}
	return p, nil
}

func (p *pipes) closeWriteEnds() {
	closeFD(&p.outW)
	closeFD(&p.errW)
}

func (p *pipes) close() {
	for _, fd := range []*int{&p.outR, &p.outW, &p.errR, &p.errW} {
		closeFD(fd)
	}
}

func closeFD(fd *int) {
	if *fd >= 0 {
		unix.Close(*fd)
		*fd = -1
	}
}

// watcher waits, on the call's own goroutine, for what a running command
// does: output on its pipes and its exit (its pidfd). The three sit in an
// epoll instance of the call's, and that epoll descriptor in the Go
// runtime's poller, so a call costs one wake-up per event and neither a
// goroutine per pipe nor an OS thread blocked for the command's lifetime
// (a session whose pids are exhausted cannot start threads).
type watcher struct {
	f     *os.File // the epoll instance (never its Fd: that would make it blocking)
	ep    int
	rc    syscall.RawConn
	p     *pipes
	pidfd int // -1 once the command has exited
	chunk []byte
	evs   [3]unix.EpollEvent
	err   error
}

func (p *pipes) watch(pidfd int) (*watcher, error) {
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("epoll_create1", err)
	}
	for _, fd := range []int{p.outR, p.errR, pidfd} {
		ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(fd)}
		if err := unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
			unix.Close(ep)
			return nil, os.NewSyscallError("epoll_ctl", err)
		}
	}
	if err := unix.SetNonblock(ep, true); err != nil {
		unix.Close(ep)
		return nil, os.NewSyscallError("fcntl", err)
	}
	w := &watcher{f: os.NewFile(uintptr(ep), "call"), ep: ep, p: p, pidfd: pidfd, chunk: *chunks.Get().(*[]byte)}
	w.rc, err = w.f.SyscallConn()
	if err == nil {
		// Fails unless the runtime's poller took the descriptor.
		err = w.f.SetReadDeadline(time.Time{})
	}
	if err != nil {
		w.f.Close()
		return nil, err
	}
	return w, nil
}

// untilExit collects output until the command has exited (it is then
// ready to be reaped).
func (w *watcher) untilExit(out *capture) error {
	err := w.rc.Read(func(uintptr) bool { return w.step(out) || w.pidfd < 0 })
	if err == nil {
		err = w.err
	}
	return err
}

// untilClosed collects output until both pipes are closed (every process
// holding them has exited or closed them) or the deadline.
func (w *watcher) untilClosed(out *capture, deadline time.Time) {
	if w.p.outR < 0 && w.p.errR < 0 {
		return
	}
	if w.f.SetReadDeadline(deadline) != nil {
		return
	}
	_ = w.rc.Read(func(uintptr) bool { return w.step(out) || (w.p.outR < 0 && w.p.errR < 0) })
}

// step handles what is ready without waiting; true means stop (an error).
func (w *watcher) step(out *capture) bool {
	ep := w.ep
	for {
		n, err := unix.EpollWait(ep, w.evs[:], 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			w.err = os.NewSyscallError("epoll_wait", err)
			return true
		}
		if n == 0 {
			return false
		}
		for _, ev := range w.evs[:n] {
			switch fd := int(ev.Fd); {
			case fd == w.pidfd:
				_ = unix.EpollCtl(ep, unix.EPOLL_CTL_DEL, fd, nil)
				w.pidfd = -1
			case fd == w.p.outR:
				w.read(ep, &w.p.outR, proto.KindStdout, out)
			case fd == w.p.errR:
				w.read(ep, &w.p.errR, proto.KindStderr, out)
			}
		}
	}
}

// read takes one chunk from a pipe, and closes the pipe at its end.
func (w *watcher) read(ep int, fd *int, kind proto.Kind, out *capture) {
	n, err := unix.Read(*fd, w.chunk)
	if n > 0 {
		out.add(kind, w.chunk[:n])
		return
	}
	if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
		return
	}
	_ = unix.EpollCtl(ep, unix.EPOLL_CTL_DEL, *fd, nil)
	closeFD(fd)
}

// close closes the epoll instance and gives the chunk back.
func (w *watcher) close() {
	w.f.Close()
	b := w.chunk
	w.chunk = nil
	chunks.Put(&b)
}

// chunks are the watchers' read buffers. Allocated anew, a call's 64 KiB
// grew the executor's heap by as much, and the runtime collected it every
// few dozen calls, waking its GC workers on other threads.
var chunks = sync.Pool{New: func() any { b := make([]byte, outputChunk); return &b }}
