package supervisor

import "github.com/cordon-sandbox/cordon/internal/proto"

// stopAll hands the host's OpStopAll to every executor that is alive
// and known: the current one and those still serving calls. Each
// executor kills what it started; a process left behind by an executor
// that has exited already (one a grant replaced) is out of every
// executor's reach (see docs/policy.md, Disk free space).
func (s *supervisor) stopAll(f *proto.Frame) {
	s.mu.Lock()
	xs := map[*executor]bool{s.cur: true}
	for _, x := range s.route {
		xs[x] = true
	}
	s.mu.Unlock()
	for x := range xs {
		x.queue.push(f)
	}
}
