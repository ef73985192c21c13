//go:build unix

package audit

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// lock takes an exclusive, non-blocking flock(2) on f, held until f is
// closed.
func lock(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) {
		for {
			ferr = unix.Flock(int(fd), unix.LOCK_EX|unix.LOCK_NB)
			if ferr != unix.EINTR {
				return
			}
		}
	}); err != nil {
		return err
	}
	switch {
	case errors.Is(ferr, unix.EWOULDBLOCK):
		return errors.New("in use: another audit log writer holds it")
	case ferr != nil:
		return os.NewSyscallError("flock", ferr)
	}
	return nil
}
