package bench

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// procCost is a process's tier, and its CPU time (ns) and context
// switches summed over its threads.
type procCost struct {
	tier            string
	cpuNS, switches int64
}

// costSnapshot samples this process and every process below it that
// belongs to a tier, by pid.
func costSnapshot() map[int]procCost {
	self := os.Getpid()
	out := map[int]procCost{self: threadCost(self, tierHost)}
	for _, pid := range descendants(self) {
		if tier := tierOf(pid); tier != "" {
			out[pid] = threadCost(pid, tier)
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
		c.CPUUS += float64(a.cpuNS-b.cpuNS) / 1e3 / float64(n)
		c.Switches += float64(a.switches-b.switches) / float64(n)
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

// threadCost sums the run time (schedstat) and the voluntary and
// involuntary context switches of every thread of pid.
func threadCost(pid int, tier string) procCost {
	c := procCost{tier: tier}
	tasks, _ := filepath.Glob("/proc/" + strconv.Itoa(pid) + "/task/*")
	for _, t := range tasks {
		if data, err := os.ReadFile(t + "/schedstat"); err == nil {
			if f := strings.Fields(string(data)); len(f) > 0 {
				ns, _ := strconv.ParseInt(f[0], 10, 64)
				c.cpuNS += ns
			}
		}
		c.switches += procField(t+"/status", "voluntary_ctxt_switches:") + procField(t+"/status", "nonvoluntary_ctxt_switches:")
	}
	return c
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
