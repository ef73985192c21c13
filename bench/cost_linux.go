package bench

import (
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/cordon-sandbox/cordon/internal/linux"
)

// procCost is a process's tier and what its threads have spent so far.
type procCost struct {
	tier string
	linux.Cost
}

// costSnapshot samples this process and every process below it that
// belongs to a tier, by pid.
func costSnapshot() map[int]procCost {
	self := os.Getpid()
	out := map[int]procCost{self: {tierHost, linux.ReadCost(self)}}
	for _, pid := range descendants(self) {
		if tier := tierOf(pid); tier != "" {
			out[pid] = procCost{tier, linux.ReadCost(pid)}
		}
	}
	return out
}

// costPerCall turns two snapshots n calls apart into each tier's cost per
// call. A process seen in only one snapshot (a session that opened or
// closed in between) is left out, so the modes that start a session per
// call report the host's cost alone.
func costPerCall(before, after map[int]procCost, n int) map[string]StageCost {
	if n <= 0 {
		return nil
	}
	out := map[string]StageCost{}
	for pid, a := range after {
		b, ok := before[pid]
		if !ok || b.tier != a.tier {
			continue // a pid reused by another process
		}
		c := out[a.tier]
		c.CPUUS += float64(a.CPU-b.CPU) / float64(time.Microsecond) / float64(n)
		c.Switches += float64(a.Switches-b.Switches) / float64(n)
		out[a.tier] = c
	}
	return out
}

// tierOf names the tier a process belongs to, or "".
func tierOf(pid int) string {
	switch s := stageOf(pid); {
	case s == "__cordon_supervisor":
		return tierSupervisor
	case s == "__cordon_executor":
		return tierExecutor
	case isServe(pid):
		return tierDaemon
	}
	return ""
}

// isServe reports whether pid runs `cordon serve`.
func isServe(pid int) bool {
	data, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	args := strings.Split(strings.TrimRight(string(data), "\x00"), "\x00")
	return len(args) > 1 && args[1] == "serve"
}

// descendants lists every process below pid.
func descendants(pid int) []int {
	children := childrenByParent()
	var out []int
	var walk func(int)
	walk = func(p int) {
		for _, c := range children[p] {
			out = append(out, c)
			walk(c)
		}
	}
	walk(pid)
	return out
}

// childrenByParent maps each process to its children, from /proc.
func childrenByParent() map[int][]int {
	children := map[int][]int{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if pp := int(procField("/proc/"+e.Name()+"/status", "PPid:")); pp > 0 {
			children[pp] = append(children[pp], pid)
		}
	}
	return children
}
