package supervisor

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cordon-sandbox/cordon/events"
	"github.com/cordon-sandbox/cordon/internal/proto"
	"github.com/cordon-sandbox/cordon/internal/seccomp"
)

// The free-space floor (limits.disk_free), before the fact. The
// executor's filter hands every fallocate to the supervisor
// (seccomp.Options.CheckAllocations), which refuses with ENOSPC one that
// could take a host filesystem the session writes (plan.HostWritable)
// below the floor, and lets every other one run.
//
// The length is a register, so it cannot change under the check; the
// file the descriptor names can: another thread of the caller, or a
// process sharing its descriptor table, can put another file at the
// same number between the check and the kernel's own lookup. So the
// check does not ask which file it is: an allocation must fit above the
// floor on every host filesystem of the session, even one made in the
// session's own /tmp (a tmpfs, whose size limits.tmp caps). That
// refuses a fallocate there only while a host filesystem is within its
// length of the floor. Writes, which allocate as they go, are the host's
// to stop (package sandbox watches the free space and stops the
// session).

// allocate answers a notification of seccomp.Allocation.
func (n *notifier) allocate(note seccomp.Notification) {
	if e := n.allocation(note); e != nil {
		call := n.attribute(int(note.PID))
		e.Call = call
		// Report first, then answer, as for denials: the event frame
		// precedes the call's result frame.
		_ = n.s.host.Send(&proto.Response{Call: call, Kind: proto.KindEvent, Event: e})
		n.answer(note.ID, unix.ENOSPC)
		return
	}
	if err := seccomp.Continue(n.fd, note.ID); err != nil && !errors.Is(err, seccomp.ErrTargetGone) {
		fmt.Fprintf(os.Stderr, "cordon supervisor: answering seccomp notification: %v\n", err)
		os.Exit(3)
	}
}

// allocation returns the limit event of a fallocate to refuse, or nil.
func (n *notifier) allocation(note seccomp.Notification) *events.Event {
	floor := n.x.plan.Limits.DiskFreeBytes
	size := seccomp.AllocationSize(note)
	if floor <= 0 || size == 0 {
		return nil
	}
	for _, path := range n.x.plan.HostWritable() {
		var st unix.Statfs_t
		if unix.Statfs(path, &st) != nil || st.Flags&unix.ST_RDONLY != 0 {
			continue
		}
		free := freeBytes(&st)
		if free-size >= floor {
			continue
		}
		return &events.Event{
			Time: time.Now(), Session: n.s.session(), Kind: events.Limit, Layer: events.LayerLimit,
			Op: "fallocate", Target: "disk_free", Rule: "limits.disk_free",
			Remedy: &events.Remedy{Capability: "limit.disk_free:" + strconv.FormatInt(floor/2, 10)},
			Detail: map[string]any{
				"limit": "disk_free", "value": floor, "free": free, "requested": size, "path": path,
				"pid": note.PID, "syscall": "fallocate",
				"reason": fmt.Sprintf("fallocate of %d bytes would leave less than the session's floor of %d bytes free on the filesystem holding %s (%d bytes free): refused with ENOSPC", size, floor, path, free),
			},
		}
	}
	return nil
}

// freeBytes is what an unprivileged user may still allocate on the
// filesystem, as df's "Avail" counts it.
func freeBytes(st *unix.Statfs_t) int64 {
	unit := st.Frsize
	if unit <= 0 {
		unit = st.Bsize
	}
	if st.Bavail > uint64(1<<62)/uint64(max(unit, 1)) {
		return 1 << 62
	}
	return int64(st.Bavail) * unit
}
