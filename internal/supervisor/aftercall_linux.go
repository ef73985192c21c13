package supervisor

import (
	"time"

	"golang.org/x/sys/unix"

	"github.com/cordon-sandbox/cordon/events"
	"github.com/cordon-sandbox/cordon/internal/proto"
)

// expect counts a Landlock refusal the write observer foresaw in call,
// whose kernel audit record the host will make the event of.
func (n *notifier) expect(call string) {
	if call == "" {
		return
	}
	n.mu.Lock()
	if n.expected == nil {
		n.expected = map[string]int{}
	}
	n.expected[call]++
	n.mu.Unlock()
}

// isExec reports whether call started a process (an exec, not a file
// tool). Call it before end.
func (n *notifier) isExec(call string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, c := range n.roots {
		if c == call {
			return true
		}
	}
	return false
}

// afterCall does what a call's end needs before its result goes to the
// host: it sends a limit event for each of the session's size-limited
// tmpfs that the call left full, and returns how many Landlock refusals
// the host is to wait for (the result's LandlockPending).
func (s *supervisor) afterCall(x *executor, call string) (pending int) {
	x.notify.mu.Lock()
	pending = x.notify.expected[call]
	delete(x.notify.expected, call)
	x.notify.mu.Unlock()
	if !x.notify.isExec(call) {
		return pending
	}
	p := x.plan
	for _, fs := range []struct {
		limit, path string
		size        int64
	}{{"tmp", "/tmp", p.TmpBytes}, {"home", p.Home, p.HomeBytes}} {
		if !full(fs.path) {
			continue
		}
		e := &events.Event{
			Time: time.Now(), Session: p.Session, Call: call, Kind: events.Limit, Layer: events.LayerLimit,
			Op: "exec", Target: fs.limit, Rule: "limits." + fs.limit,
			Detail: map[string]any{"limit": fs.limit, "value": fs.size, "path": fs.path,
				"reason": fs.path + " is full: writes there fail with ENOSPC until files are removed"},
		}
		_ = s.host.Send(&proto.Response{Call: call, Kind: proto.KindEvent, Event: e})
	}
	return pending
}

// full reports whether the filesystem at path has no block or no inode
// left for the session. A tmpfs that a write filled and the tool then
// emptied again (a build that cleans up after failing) is not seen.
func full(path string) bool {
	var st unix.Statfs_t
	if unix.Statfs(path, &st) != nil {
		return false
	}
	return st.Bavail == 0 || (st.Files > 0 && st.Ffree == 0)
}
