package sandbox

import (
	"fmt"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cordon-sandbox/cordon/events"
	"github.com/cordon-sandbox/cordon/internal/plan"
	"github.com/cordon-sandbox/cordon/internal/proto"
)

// The free-space floors (limits.disk_free, limits.disk_free_inodes),
// after the fact. The supervisor refuses a fallocate that would cross the
// floor (internal/supervisor/disk_linux.go); ordinary writes allocate as
// they go and cannot be refused in advance, so the host watches the
// filesystems instead. One watcher per host filesystem, per process, is
// shared by every session on it: it reads the filesystem's free space and
// inodes every diskPoll, and when either has fallen since the last read
// and is below a session's floor, it stops that session's processes (see
// stopForDisk). A writer therefore overshoots the floor by what it writes
// in one interval, and by the time the kill takes.
//
// The watcher polls for as long as a session with a floor is open on its
// filesystem, not only while calls run: processes outlive their calls
// (an agent keeps a server running that way), and a writer left behind
// must not escape the floor. One fstatfs every 10 ms costs microseconds.
//
// The watcher cannot tell who wrote: a fall below the floor stops every
// session on the filesystem whose floor it crosses, unless the session
// runs commands and the free space is still above what it was when each
// of them started (one that has removed files to make room goes on). A
// session is stopped at most once between the starts of its exec calls:
// the stop kills every process it has, so until a call starts again
// nothing of it can write.

// diskPoll is how often a watcher reads its filesystem.
const diskPoll = 10 * time.Millisecond

// diskWatcher watches one host filesystem for the sessions of this
// process that write it.
type diskWatcher struct {
	dev  uint64
	fd   int // O_PATH, of the path the first session named
	stop chan struct{}
	done chan struct{}

	mu    sync.Mutex
	users map[*Session]string // session → where it sees the filesystem
}

// diskWatchers are the process's watchers by device number.
var diskWatchers = struct {
	mu    sync.Mutex
	byDev map[uint64]*diskWatcher
}{byDev: map[uint64]*diskWatcher{}}

// diskReading is one fstatfs of a watched filesystem.
type diskReading struct {
	avail int64  // bytes an unprivileged user may still allocate (df's "Avail")
	bfree uint64 // blocks free, the reserved ones included: falls with every allocation
	ffree uint64 // free inodes
}

func readDisk(fd int) (diskReading, bool) {
	var st unix.Statfs_t
	if unix.Fstatfs(fd, &st) != nil {
		return diskReading{}, false
	}
	unit := st.Frsize
	if unit <= 0 {
		unit = st.Bsize
	}
	avail := int64(1 << 62)
	if unit > 0 && st.Bavail <= uint64(1<<62)/uint64(unit) {
		avail = int64(st.Bavail) * unit
	}
	return diskReading{avail: avail, bfree: st.Bfree, ffree: st.Ffree}, true
}

// diskPlace is a host path the session can write and where it sees it.
type diskPlace struct {
	host, view string
}

// diskPlaces lists the host paths the session can write under plan p:
// the workspace and the writable binds, fs.write grants' included.
func diskPlaces(p *plan.Plan) []diskPlace {
	var out []diskPlace
	if p.WorkspaceWritable {
		out = append(out, diskPlace{host: p.Workspace, view: p.Workspace})
	}
	for _, b := range p.Binds {
		if b.Writable && b.Kind != plan.BindSymlink {
			out = append(out, diskPlace{host: b.Source, view: b.Target})
		}
	}
	return out
}

// watchDisks makes the filesystems of places the ones watched for the
// session, when its limits set a floor; with no floor, or no places, it
// watches none. It returns a warning for each filesystem that is below
// a floor already, or that cannot be watched. Once the session is
// closed it watches none, whatever it is asked.
func (s *Session) watchDisks(places []diskPlace, lim plan.Limits) []string {
	s.diskMu.Lock()
	defer s.diskMu.Unlock()
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed || (lim.DiskFreeBytes <= 0 && lim.DiskFreeInodes <= 0) {
		places = nil
	}
	var warnings []string
	want := map[uint64]*diskWatcher{}
	for _, pl := range places {
		var st unix.Stat_t
		if err := unix.Stat(pl.host, &st); err != nil {
			warnings = append(warnings, fmt.Sprintf("the free space of the filesystem holding %s is not watched (%v)", pl.view, err))
			continue
		}
		if want[st.Dev] != nil {
			continue // one watch per filesystem; the first place names it
		}
		if w := s.disks[st.Dev]; w != nil {
			want[st.Dev] = w
			continue
		}
		w, err := acquireDisk(pl, s)
		if err != nil {
			warnings = append(warnings, fmt.Sprintf("the free space of the filesystem holding %s is not watched (%v)", pl.view, err))
			continue
		}
		if want[w.dev] != nil || s.disks[w.dev] != nil {
			continue // the path moved to a filesystem held already
		}
		want[w.dev] = w
		r, ok := readDisk(w.fd)
		switch {
		case !ok:
		case lim.DiskFreeBytes > 0 && r.avail < lim.DiskFreeBytes:
			warnings = append(warnings, fmt.Sprintf("the filesystem holding %s has %d bytes free, below limits.disk_free (%d): commands that write there will be stopped", pl.view, r.avail, lim.DiskFreeBytes))
		case lim.DiskFreeInodes > 0 && int64(r.ffree) < lim.DiskFreeInodes:
			warnings = append(warnings, fmt.Sprintf("the filesystem holding %s has %d inodes free, below limits.disk_free_inodes (%d): commands that create files there will be stopped", pl.view, r.ffree, lim.DiskFreeInodes))
		}
	}
	for dev, w := range s.disks {
		if want[dev] != w {
			releaseDisk(w, s)
		}
	}
	s.disks = want
	return warnings
}

// acquireDisk registers s with the watcher of pl's filesystem, starting
// one if there is none.
func acquireDisk(pl diskPlace, s *Session) (*diskWatcher, error) {
	fd, err := unix.Open(pl.host, unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, err
	}
	diskWatchers.mu.Lock()
	defer diskWatchers.mu.Unlock()
	w := diskWatchers.byDev[st.Dev]
	if w != nil {
		unix.Close(fd)
	} else {
		w = &diskWatcher{dev: st.Dev, fd: fd, stop: make(chan struct{}), done: make(chan struct{}), users: map[*Session]string{}}
		diskWatchers.byDev[st.Dev] = w
		go w.run()
	}
	w.mu.Lock()
	if _, ok := w.users[s]; !ok {
		w.users[s] = pl.view
	}
	w.mu.Unlock()
	return w, nil
}

// releaseDisk drops s from w, and stops w when no session is left,
// waiting for its goroutine.
func releaseDisk(w *diskWatcher, s *Session) {
	diskWatchers.mu.Lock()
	w.mu.Lock()
	delete(w.users, s)
	last := len(w.users) == 0
	w.mu.Unlock()
	if last {
		delete(diskWatchers.byDev, w.dev)
	}
	diskWatchers.mu.Unlock()
	if last {
		close(w.stop)
		<-w.done
		unix.Close(w.fd)
	}
}

func (w *diskWatcher) run() {
	defer close(w.done)
	t := time.NewTicker(diskPoll)
	defer t.Stop()
	prev, ok := readDisk(w.fd)
	for {
		select {
		case <-w.stop:
			return
		case <-t.C:
		}
		cur, ok2 := readDisk(w.fd)
		if !ok2 {
			continue
		}
		for _, h := range w.crossed(prev, cur, ok) {
			h.s.stopForDisk(h)
		}
		prev, ok = cur, true
	}
}

// diskHit is a floor that a fall of the free space crossed for a session.
type diskHit struct {
	s     *Session
	dev   uint64
	cur   diskReading
	limit string // "disk_free" or "disk_free_inodes"
	floor int64
	free  int64 // bytes or inodes, as limit
	path  string
}

// fellFrom reports whether what the hit's limit counts has fallen since
// reading base.
func (h diskHit) fellFrom(base diskReading) bool {
	if h.limit == "disk_free_inodes" {
		return h.cur.ffree < base.ffree
	}
	return h.cur.bfree < base.bfree
}

// crossed returns, for every session on the filesystem, the floor of it
// that the fall from prev (when known) to cur crossed, if any.
func (w *diskWatcher) crossed(prev, cur diskReading, known bool) []diskHit {
	if !known || (cur.bfree >= prev.bfree && cur.ffree >= prev.ffree) {
		return nil // nothing was allocated: the common case
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	var hits []diskHit
	for s, path := range w.users {
		lim := s.limits.Load()
		h := diskHit{s: s, dev: w.dev, cur: cur, path: path}
		switch {
		case lim.DiskFreeBytes > 0 && cur.avail < lim.DiskFreeBytes && cur.bfree < prev.bfree:
			h.limit, h.floor, h.free = "disk_free", lim.DiskFreeBytes, cur.avail
		case lim.DiskFreeInodes > 0 && int64(cur.ffree) < lim.DiskFreeInodes && cur.ffree < prev.ffree:
			h.limit, h.floor, h.free = "disk_free_inodes", lim.DiskFreeInodes, int64(cur.ffree)
		default:
			continue
		}
		hits = append(hits, h)
	}
	return hits
}

// diskMarks reads each filesystem the session writes: the baseline a
// call's "has fallen since it started" is measured from. diskMu keeps
// the watchers, and so their descriptors, from going meanwhile.
func (s *Session) diskMarks() map[uint64]diskReading {
	s.diskMu.Lock()
	defer s.diskMu.Unlock()
	out := make(map[uint64]diskReading, len(s.disks))
	for dev, w := range s.disks {
		if r, ok := readDisk(w.fd); ok {
			out[dev] = r
		}
	}
	return out
}

// stopForDisk stops the session's processes, as a timeout stops a call's
// (SIGKILL), but all of them: the calls that are running, and what calls
// left behind, since a writer may have left its call. While commands
// run, it does so only if the free space (or inodes) is below what it
// was when one of them started: a command that has removed files to
// make room goes on while someone else on the host writes. Each running
// exec call's result carries the limit event; with none running, the
// event is the session's alone, on its stream.
func (s *Session) stopForDisk(h diskHit) {
	starts := s.diskStarts.Load()
	if s.diskStopped.Load() >= starts {
		return // stopped already, and no call has started since
	}
	s.mu.Lock()
	if s.closed || s.dead != nil {
		s.mu.Unlock()
		return
	}
	var calls []string
	fell := false
	for id, pc := range s.pending {
		if pc.exec {
			calls = append(calls, id)
			base, ok := pc.disk[h.dev]
			fell = fell || !ok || h.fellFrom(base)
		}
	}
	s.mu.Unlock()
	if len(calls) > 0 && !fell {
		return
	}
	for {
		stopped := s.diskStopped.Load()
		if stopped >= starts {
			return // another watcher of the session stopped it
		}
		if s.diskStopped.CompareAndSwap(stopped, starts) {
			break
		}
	}
	// The events go first, so that a result the kill brings about finds
	// its event there.
	for _, c := range calls {
		s.record(h.event(s.id, c, "fell to", "the call's processes, and any the session left running, were killed"))
	}
	if len(calls) == 0 {
		s.record(h.event(s.id, "", "fell to", "the processes earlier calls left running were killed"))
	}
	_ = s.conn.Send(&proto.Request{Op: proto.OpStopAll})
}

// event is the limit event of a crossed floor.
func (h diskHit) event(session, call, fell, what string) *events.Event {
	e := &events.Event{
		Time: time.Now(), Session: session, Call: call, Kind: events.Limit, Layer: events.LayerLimit,
		Op: "exec", Target: h.limit, Rule: "limits." + h.limit,
		Remedy: &events.Remedy{Capability: "limit." + h.limit + ":" + strconv.FormatInt(h.floor/2, 10)},
		Detail: map[string]any{"limit": h.limit, "value": h.floor, "free": h.free, "path": h.path},
	}
	unit := "bytes"
	if h.limit == "disk_free_inodes" {
		unit = "inodes"
	}
	e.Detail["reason"] = fmt.Sprintf("the filesystem holding %s %s %d free %s, below the session's floor of %d (%s): %s", h.path, fell, h.free, unit, h.floor, e.Rule, what)
	return e
}

// diskRefusal returns the limit event that refuses a write_file of size
// bytes to the workspace: one that would leave less than the floor free,
// or one made while the inodes are below theirs. The file tool writes in
// the executor, where no kill can stop it halfway, so it is checked
// before, against a fresh reading.
func (s *Session) diskRefusal(call string, size int64) *events.Event {
	lim := s.limits.Load()
	if !s.plan.WorkspaceWritable || (lim.DiskFreeBytes <= 0 && lim.DiskFreeInodes <= 0) {
		return nil
	}
	fd, err := unix.Open(s.plan.Workspace, unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil
	}
	r, ok := readDisk(fd)
	unix.Close(fd)
	if !ok {
		return nil
	}
	var h diskHit
	switch {
	case lim.DiskFreeBytes > 0 && r.avail-size < lim.DiskFreeBytes:
		h = diskHit{limit: "disk_free", floor: lim.DiskFreeBytes, free: r.avail}
	case lim.DiskFreeInodes > 0 && int64(r.ffree) < lim.DiskFreeInodes:
		h = diskHit{limit: "disk_free_inodes", floor: lim.DiskFreeInodes, free: int64(r.ffree)}
	default:
		return nil
	}
	h.path = filepath.Clean(s.plan.Workspace)
	e := h.event(s.id, call, "has", "")
	e.Op = "write_file"
	e.Detail["requested"] = size
	if h.limit == "disk_free" {
		e.Detail["reason"] = fmt.Sprintf("the filesystem holding %s has %d bytes free: writing %d more would take it below the session's floor of %d (limits.disk_free), so write_file was refused", h.path, h.free, size, h.floor)
	} else {
		e.Detail["reason"] = fmt.Sprintf("the filesystem holding %s has %d inodes free, below the session's floor of %d (limits.disk_free_inodes), so write_file was refused", h.path, h.free, h.floor)
	}
	return e
}
