package executor

import (
	"os"
	"os/signal"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cordon-sandbox/cordon/internal/linux"
)

// The executor is the child subreaper of its session: processes that a
// call left behind (`(cmd &)`, double forks) become its children when
// their parent exits. os/exec waits only for the commands it started, so
// without a reaper every such orphan would stay a zombie and count
// against the session's pids limit.
//
// reapOrphans waits for exited children that are not a running call's
// command. exec starts a command and registers it in e.calls under e.mu,
// and the reaper decides under e.mu, so a command that exits at once is
// never taken from its cmd.Wait even if the lock-free scan saw it first.
// Orphans are not urgent: the reaper lets SIGCHLDs settle before it scans,
// which keeps the scan off the path of a finishing call.
func (e *executor) reapOrphans() {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, unix.SIGCHLD)
	self := os.Getpid()
	for range sig {
		time.Sleep(reapDelay)
		select {
		case <-sig:
		default:
		}
		zombies := zombieChildren(self)
		if len(zombies) == 0 {
			continue
		}
		e.mu.Lock()
		for _, pid := range zombies {
			if _, ok := e.calls[pid]; ok {
				continue
			}
			var ws unix.WaitStatus
			_, _ = unix.Wait4(pid, &ws, unix.WNOHANG, nil)
		}
		e.mu.Unlock()
	}
}

// reapDelay is how long the reaper lets exits accumulate before a scan.
const reapDelay = 50 * time.Millisecond

// zombieChildren lists the exited, unreaped children of pid.
func zombieChildren(pid int) []int {
	var out []int
	for child, st := range linux.Children(pid) {
		if st.State == 'Z' {
			out = append(out, child)
		}
	}
	return out
}
