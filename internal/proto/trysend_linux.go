package proto

import (
	"fmt"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// TrySendFrame writes as much of a frame as the connection's socket
// takes without waiting, and returns what is left (nil: all of it). sock
// is the socket the Conn writes to (through Control, so a closed socket
// is an error, never a write to a descriptor number reused since).
func (c *Conn) TrySendFrame(f *Frame, sock syscall.RawConn) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	b := f.wire
	var err error
	cerr := sock.Control(func(fd uintptr) {
		for len(b) > 0 {
			var n int
			n, err = unix.SendmsgN(int(fd), b, nil, nil, unix.MSG_DONTWAIT|unix.MSG_NOSIGNAL)
			switch {
			case err == unix.EINTR:
				continue
			case err == unix.EAGAIN:
				err = nil
				return
			case err != nil:
				err = os.NewSyscallError("sendmsg", err)
				return
			}
			b = b[n:]
		}
	})
	if err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("sending frame: %w", err)
	}
	if len(b) == 0 {
		return nil, nil
	}
	return b, nil
}
