package supervisor

import (
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// TestMayWrite checks the permission bits the kernel applies before
// Landlock: the owner's, else the group's, else the others'.
func TestMayWrite(t *testing.T) {
	tid := unix.Gettid()
	uid, gid := uint32(os.Getuid()), uint32(os.Getgid())
	other := uint32(4242424) // no id of this process
	for _, c := range []struct {
		name     string
		uid, gid uint32
		mode     uint32
		want     bool
	}{
		{"owner may write", uid, gid, 0o600, true},
		{"owner may not, though the group and others may", uid, gid, 0o466, false},
		{"group may write", other, gid, 0o460, true},
		{"group may not, though others may", other, gid, 0o646, false},
		{"others may write", other, other, 0o602, true},
		{"nobody may write", other, other, 0o644, false},
	} {
		st := &unix.Stat_t{Uid: c.uid, Gid: c.gid, Mode: unix.S_IFREG | c.mode}
		if got := mayWrite(tid, st); got != c.want {
			t.Errorf("%s (mode %o): mayWrite = %v", c.name, c.mode, got)
		}
	}
	if mayWrite(-1, &unix.Stat_t{Uid: uid, Mode: unix.S_IFREG | 0o600}) {
		t.Error("mayWrite of a thread that cannot exist: true")
	}
}
