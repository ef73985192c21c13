package redteam

import (
	"net"
	"os"
	"os/signal"
	"syscall"
)

func sigIgnore(s syscall.Signal) { signal.Ignore(s) }

// syscallKill SIGKILLs one process the harness started, by pid.
func syscallKill(pid int) { _ = syscall.Kill(pid, syscall.SIGKILL) }

func inotifyOnce() error {
	fd, err := syscall.InotifyInit1(syscall.IN_CLOEXEC)
	if err == nil {
		syscall.Close(fd)
	}
	return err
}

func hostAddrs() ([]string, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && !ipn.IP.IsLoopback() && ipn.IP.To4() != nil {
			out = append(out, ipn.IP.String())
		}
	}
	return out, nil
}

// openFDs counts this process's open descriptors.
func openFDs() int {
	ents, _ := os.ReadDir("/proc/self/fd")
	return len(ents)
}
