package bench

import (
	"bufio"
	"bytes"
	"os"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// machine describes this host.
func machine() Machine {
	m := Machine{CPUs: runtime.NumCPU(), Go: runtime.Version(), Root: os.Geteuid() == 0}
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		m.Kernel = unix.ByteSliceToString(u.Sysname[:]) + " " + unix.ByteSliceToString(u.Release[:])
	}
	if kb := procField("/proc/meminfo", "MemTotal:"); kb > 0 {
		m.MemoryMB = kb / 1024
	}
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(data), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if data, err := os.ReadFile("/etc/os-release"); err == nil {
		for _, l := range strings.Split(string(data), "\n") {
			if v, ok := strings.CutPrefix(l, "PRETTY_NAME="); ok {
				m.OS = strings.Trim(v, `"`)
			}
		}
	}
	return m
}

// procField reads a "Name:   N kB" field of a /proc file.
func procField(path, name string) int64 {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name); ok {
			fs := strings.Fields(v)
			if len(fs) > 0 {
				n, _ := strconv.ParseInt(fs[0], 10, 64)
				return n
			}
		}
	}
	return 0
}

func selfRSS() int64 { return procField("/proc/self/status", "VmRSS:") }

// usage is the memory of this process's sessions.
type usage struct {
	procs        int
	pssKB, rssKB int64
	byStage      map[string]int64
}

// sessionUsage sums Pss and Rss over the sessions' processes: the
// children of this process started as __cordon_supervisor, and every
// process below them (the executor, anything still running).
func sessionUsage() (usage, error) {
	u := usage{byStage: map[string]int64{}}
	if _, err := os.Stat("/proc/self"); err != nil {
		return u, err
	}
	children := childrenByParent()
	var walk func(pid int)
	walk = func(pid int) {
		pss := procField("/proc/"+strconv.Itoa(pid)+"/smaps_rollup", "Pss:")
		u.procs++
		u.pssKB += pss
		u.rssKB += procField("/proc/"+strconv.Itoa(pid)+"/status", "VmRSS:")
		u.byStage[stageOf(pid)] += pss
		for _, c := range children[pid] {
			walk(c)
		}
	}
	for _, pid := range children[os.Getpid()] {
		if stageOf(pid) == "__cordon_supervisor" {
			walk(pid)
		}
	}
	return u, nil
}

// stageOf names a process by its cordon stage argument, or its command.
func stageOf(pid int) string {
	data, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	args := bytes.Split(bytes.TrimRight(data, "\x00"), []byte{0})
	for _, a := range args {
		if bytes.HasPrefix(a, []byte("__cordon_")) {
			return string(a)
		}
	}
	if len(args) > 0 && len(args[0]) > 0 {
		return string(args[0])
	}
	return "?"
}
