package proto

import (
	"os"

	"golang.org/x/sys/unix"
)

// OneWay returns the two ends of a unix stream socket for frames that go
// one way (see NewSplitConn), both blocking and close-on-exec.
func OneWay() (r, w *os.File, err error) {
	rfd, wfd, err := OneWayFDs()
	if err != nil {
		return nil, nil, err
	}
	return os.NewFile(uintptr(rfd), "frames-in"), os.NewFile(uintptr(wfd), "frames-out"), nil
}

// OneWayFDs is OneWay with the ends as descriptors, for a caller that
// sets an end's mode before it wraps it. r can only read and w can only
// write (reads at w see end of file), so a peer that holds one end cannot
// use it backwards.
func OneWayFDs() (r, w int, err error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, -1, os.NewSyscallError("socketpair", err)
	}
	if err := unix.Shutdown(fds[0], unix.SHUT_WR); err != nil {
		unix.Close(fds[0])
		unix.Close(fds[1])
		return -1, -1, os.NewSyscallError("shutdown", err)
	}
	return fds[0], fds[1], nil
}
