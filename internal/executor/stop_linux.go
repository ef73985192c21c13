package executor

import (
	"os"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/cordon-sandbox/cordon/internal/linux"
)

// stopPasses bounds how often stopAll looks again for processes forked
// while it was killing their parents.
const stopPasses = 16

// stopAll kills every process the executor started: the process trees
// of running calls, and everything they left behind, which as the
// session's child subreaper the executor has inherited (a setsid'd or
// double-forked process is still its descendant). It is what the host
// asks for when a call took a host filesystem below the policy's floor
// (limits.disk_free): a writer that left its call's process group, which
// a timeout would not reach, is stopped too. The commands of running
// calls die of SIGKILL and their calls answer as usual.
func (e *executor) stopAll() {
	self := os.Getpid()
	for range stopPasses {
		if killDescendants(self) == 0 {
			return
		}
	}
}

// killDescendants sends SIGKILL to every live descendant of pid and
// returns how many it signalled. A child forked after the scan read its
// parent escapes this pass, not the next.
func killDescendants(pid int) int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	parent := map[int]int{}
	for _, ent := range ents {
		p, err := strconv.Atoi(ent.Name())
		if err != nil {
			continue
		}
		if st, err := linux.ReadProcStat(p); err == nil && st.State != 'Z' {
			parent[p] = st.PPid
		}
	}
	n := 0
	for p := range parent {
		for a, hops := parent[p], 0; a > 1 && hops < 64; a, hops = parent[a], hops+1 {
			if a == pid {
				if unix.Kill(p, unix.SIGKILL) == nil {
					n++
				}
				break
			}
		}
	}
	return n
}
