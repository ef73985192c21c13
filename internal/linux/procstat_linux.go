package linux

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// ProcStat is what cordon reads of /proc/PID/stat.
type ProcStat struct {
	State   byte // 'R', 'S', 'Z', ...
	PPid    int
	Pgrp    int
	Session int
}

// ReadProcFile reads a file of /proc with plain system calls: open, read
// until end of file, close. os.ReadFile also offers the descriptor to the
// runtime's poller (an epoll_ctl the kernel refuses for /proc, and two
// fcntl around it) and takes an fstat to size its buffer: eleven system
// calls for a small file where this makes three or four. The supervisor
// reads /proc on the path of a command's notified system calls.
func ReadProcFile(path string) ([]byte, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	buf := make([]byte, 0, 4096)
	for {
		n, err := unix.Read(fd, buf[len(buf):cap(buf)])
		switch {
		case err == unix.EINTR:
			continue
		case err != nil:
			return nil, &os.PathError{Op: "read", Path: path, Err: err}
		case n == 0:
			return buf, nil
		}
		buf = buf[:len(buf)+n]
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
	}
}

// ReadProcStat parses /proc/PID/stat. The command name may hold spaces
// and parentheses, so fields are counted from the last ')'.
func ReadProcStat(pid int) (ProcStat, error) {
	b, err := ReadProcFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return ProcStat{}, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return ProcStat{}, errors.New("malformed /proc/PID/stat")
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 4 || len(f[0]) != 1 {
		return ProcStat{}, errors.New("malformed /proc/PID/stat")
	}
	st := ProcStat{State: f[0][0]}
	st.PPid, _ = strconv.Atoi(f[1])
	st.Pgrp, _ = strconv.Atoi(f[2])
	st.Session, _ = strconv.Atoi(f[3])
	return st, nil
}

// Children lists the processes whose parent is pid, with their stat.
func Children(pid int) map[int]ProcStat {
	out := map[int]ProcStat{}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return out
	}
	for _, e := range ents {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, err := ReadProcStat(child); err == nil && st.PPid == pid {
			out[child] = st
		}
	}
	return out
}

// Cost is what a process's threads have spent so far: time on a CPU, and
// context switches (voluntary and involuntary), each one a wake-up to come
// back from.
type Cost struct {
	CPU      time.Duration
	Switches int64
}

// ReadCost sums /proc/PID/task/*/schedstat and the switch counts of
// /proc/PID/task/*/status over the process's threads; a thread that ends
// meanwhile is left out.
func ReadCost(pid int) Cost {
	var c Cost
	tasks, _ := filepath.Glob("/proc/" + strconv.Itoa(pid) + "/task/*")
	for _, t := range tasks {
		if b, err := os.ReadFile(t + "/schedstat"); err == nil {
			if f := strings.Fields(string(b)); len(f) > 0 {
				ns, _ := strconv.ParseInt(f[0], 10, 64)
				c.CPU += time.Duration(ns)
			}
		}
		b, err := os.ReadFile(t + "/status")
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			k, v, ok := strings.Cut(line, ":")
			if ok && (k == "voluntary_ctxt_switches" || k == "nonvoluntary_ctxt_switches") {
				n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
				c.Switches += n
			}
		}
	}
	return c
}
