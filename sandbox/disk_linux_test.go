package sandbox_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cordon-sandbox/cordon/events"
	"github.com/cordon-sandbox/cordon/policy"
	"github.com/cordon-sandbox/cordon/sandbox"
)

// freeOn returns the free space (df's "Avail") and free inodes of the
// filesystem holding dir.
func freeOn(t *testing.T, dir string) (bytes, inodes int64) {
	t.Helper()
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	return int64(st.Bavail) * st.Frsize, int64(st.Ffree)
}

// diskWorkspace returns a workspace on a filesystem with room for the
// tests below, which allocate up to about 1.3 GiB there (removed after
// each step), and its free space.
//
// The filesystem is a tmpfs of the test's own where it can have one (as
// root, or in TestUnprivileged's run, which is handed one): a floor
// stops a session for any fall of the free space, and other packages'
// tests (the red team's D10 fills 250 MiB) write the shared disk at the
// same time, which would make these tests judge someone else's writes.
func diskWorkspace(t *testing.T) (string, int64) {
	t.Helper()
	dir := os.Getenv("CORDON_TEST_DISK_DIR")
	if dir == "" && os.Geteuid() == 0 {
		dir = privateTmpfs(t, 0)
	}
	if dir == "" {
		ws := workspace(t)
		free, _ := freeOn(t, ws)
		if free < 8<<30 {
			t.Skipf("only %d MiB free on the workspace's filesystem: the free-space floor tests fill up to 1.3 GiB and need 8 GiB", free>>20)
		}
		return ws, free
	}
	ws, err := os.MkdirTemp(dir, "ws-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(ws) })
	if err := os.Chmod(ws, 0o755); err != nil {
		t.Fatal(err)
	}
	free, _ := freeOn(t, ws)
	return ws, free
}

// privateTmpfs mounts a 2 GiB tmpfs owned by uid for the floor tests and
// unmounts it when the test ends (after the sessions on it are closed:
// cleanups run last-registered first).
func privateTmpfs(t *testing.T, uid int) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "cordon-disk-")
	if err != nil {
		t.Fatal(err)
	}
	opts := "size=2g,nr_inodes=100000,mode=0755,uid=" + strconv.Itoa(uid) + ",gid=" + strconv.Itoa(uid)
	if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, opts); err != nil {
		os.Remove(dir)
		t.Fatalf("mounting a tmpfs for the floor tests: %v", err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
			t.Errorf("unmounting %s: %v", dir, err)
		}
		os.Remove(dir)
	})
	return dir
}

// number reads a number of an event's detail: an int64 in an event the
// host made, a float64 in one that came over JSON.
func number(v any) int64 {
	switch v := v.(type) {
	case int64:
		return v
	case float64:
		return int64(v)
	}
	return -1
}

func diskLimit(r *sandbox.ExecResult, op, limit string) *events.Event {
	for _, d := range r.Denials {
		if d.Kind == events.Limit && d.Op == op && d.Target == limit {
			return d
		}
	}
	return nil
}

// refused runs command until its result has the fallocate refusal of a
// disk floor, at most three times, calling clean after each try that
// missed it: once the filesystem is below the floor, someone else's
// write on the host can stop the call before it gets there.
func refused(t *testing.T, s *sandbox.Session, command string, clean func()) *sandbox.ExecResult {
	t.Helper()
	var r *sandbox.ExecResult
	for try := range 3 {
		if r = sh(t, s, command); diskLimit(r, "fallocate", "disk_free") != nil || diskLimit(r, "exec", "disk_free") == nil {
			return r
		}
		t.Logf("try %d was stopped for the floor before its fallocate was refused (a write elsewhere on the host)", try+1)
		clean()
	}
	return r
}

// fallocLoop allocates up to n 64 MiB files in the workspace, stopping at
// the first refusal, and prints how many it made.
func fallocLoop(n int) string {
	return `n=0; for i in $(seq 1 ` + strconv.Itoa(n) + `); do fallocate -l 64M "f$i" || break; n=$((n+1)); done; echo $n`
}

// TestDiskFree: with the floor 256 MiB under the free space, fallocate
// is refused with ENOSPC after about four 64 MiB files and a dd stream is
// killed well before 512 MiB, each with a limit event; with the floor
// lowered by a grant, the same fallocates and the same stream go
// through.
func TestDiskFree(t *testing.T) {
	ws, free := diskWorkspace(t)
	pol := policy.Default()
	pol.Limits.DiskFree = policy.ByteSize(free - 256<<20)
	s, _ := open(t, ws, pol)
	// Removed from the host: a call of the session, started while the
	// filesystem is below the floor, is stopped by anyone's write.
	clean := func() {
		files, _ := filepath.Glob(filepath.Join(ws, "f*"))
		for _, f := range append(files, filepath.Join(ws, "big")) {
			if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
				t.Error(err)
			}
		}
	}
	defer clean()

	// Others on the host write and delete too: the room the floor
	// leaves (256 MiB when nothing else changed) is read before each fill.
	room := func() int64 {
		free, _ := freeOn(t, ws)
		return free - int64(pol.Limits.DiskFree)
	}
	left := room()
	r := refused(t, s, fallocLoop(16), func() { clean(); left = room() })
	n, _ := strconv.Atoi(strings.TrimSpace(string(r.Stdout)))
	t.Logf("fallocate: %d files of 64 MiB before the refusal, with %d MiB above the floor", n, left>>20)
	e := diskLimit(r, "fallocate", "disk_free")
	switch {
	case n == 16 || int64(n)<<26 > left+64<<20 || (left > 128<<20 && n == 0):
		t.Errorf("%d files of 64 MiB allocated with %d MiB above the floor", n, left>>20)
	case !strings.Contains(string(r.Stderr), "No space left on device"):
		t.Errorf("the refused fallocate said %q, want ENOSPC", r.Stderr)
	case e == nil || e.Rule != "limits.disk_free" || e.Layer != events.LayerLimit || r.Limit != "disk_free":
		t.Errorf("no disk_free limit event for the refused fallocate: limit %q %s", r.Limit, describe(r.Denials))
	case e.Remedy == nil || !strings.HasPrefix(e.Remedy.Capability, "limit.disk_free:"):
		t.Errorf("the event's remedy: %+v", e.Remedy)
	case number(e.Detail["value"]) != int64(pol.Limits.DiskFree) || e.Detail["path"] != ws:
		t.Errorf("the event's detail: %v", e.Detail)
	case !strings.Contains(r.Explanation, "disk_free limit") || !strings.Contains(r.Explanation, "ENOSPC"):
		t.Errorf("explanation %q", r.Explanation)
	}
	clean()

	// A stream of writes cannot be refused in advance: it is killed
	// once the free space falls below the floor, overshooting by what it
	// writes in about 10 ms.
	left = room()
	r = sh(t, s, "dd if=/dev/zero of=big bs=1M count=2048 2>&1")
	fi, err := os.Stat(filepath.Join(ws, "big"))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("dd: %d MiB written before the stop, with %d MiB above the floor; exit %d %s", fi.Size()>>20, left>>20, r.ExitCode, r.Signal)
	e = diskLimit(r, "exec", "disk_free")
	switch {
	case fi.Size() >= left+256<<20:
		t.Errorf("dd wrote %d MiB with %d MiB above the floor", fi.Size()>>20, left>>20)
	case r.Signal != "SIGKILL" || e == nil || r.Limit != "disk_free":
		t.Errorf("dd was not stopped for the floor: exit %d signal %q limit %q %s", r.ExitCode, r.Signal, r.Limit, describe(r.Denials))
	case number(e.Detail["free"]) >= int64(pol.Limits.DiskFree) || !strings.Contains(r.Explanation, "processes were killed"):
		t.Errorf("the event: %v; explanation %q", e.Detail, r.Explanation)
	}
	clean()

	// The positive control: the floor lowered to nothing by a grant.
	if err := s.ApplyGrants([]string{"limit.disk_free:0"}); err != nil {
		t.Fatal(err)
	}
	if r := sh(t, s, fallocLoop(16)); strings.TrimSpace(string(r.Stdout)) != "16" || len(r.Denials) != 0 {
		t.Errorf("fallocate without a floor: %q files, %q %s", r.Stdout, r.Stderr, describe(r.Denials))
	}
	clean()
	if r := sh(t, s, "dd if=/dev/zero of=big bs=1M count=768 2>&1"); r.ExitCode != 0 || len(r.Denials) != 0 {
		t.Errorf("768 MiB of dd without a floor: exit %d %s %q %s", r.ExitCode, r.Signal, r.Stdout, describe(r.Denials))
	}
	clean()

	// And back: the grant revoked, the policy's floor holds again.
	if err := s.ApplyGrants(nil); err != nil {
		t.Fatal(err)
	}
	if r := sh(t, s, fallocLoop(16)); diskLimit(r, "fallocate", "disk_free") == nil && diskLimit(r, "exec", "disk_free") == nil {
		t.Errorf("fallocate after the grant was revoked: %q files, %s", r.Stdout, describe(r.Denials))
	}
}

// TestDiskFreeLeftBehind: a writer that left its call (setsid, in the
// background, starting once the call has ended) is stopped too, and the
// event is on the session's stream.
func TestDiskFreeLeftBehind(t *testing.T) {
	ws, free := diskWorkspace(t)
	pol := policy.Default()
	pol.Limits.DiskFree = policy.ByteSize(free - 256<<20)
	s, sub := open(t, ws, pol)
	defer os.Remove(filepath.Join(ws, "bg"))
	r := sh(t, s, "setsid sh -c 'sleep 0.3; exec dd if=/dev/zero of=bg bs=1M count=2048 2>/dev/null' </dev/null >/dev/null 2>&1 & echo started")
	if string(r.Stdout) != "started\n" {
		t.Fatalf("starting the writer: %q %q", r.Stdout, r.Stderr)
	}
	var e *events.Event
	deadline := time.After(30 * time.Second)
	for e == nil {
		select {
		case ev := <-sub.C:
			if ev.Kind == events.Limit && ev.Target == "disk_free" {
				e = ev
			}
		case <-deadline:
			t.Fatal("no disk_free event for the writer left behind")
		}
	}
	if reason, _ := e.Detail["reason"].(string); e.Call != "" || !strings.Contains(reason, "left running were killed") {
		t.Errorf("the event of a writer between calls: call %q %v", e.Call, e.Detail)
	}
	// It stays stopped.
	size := func() int64 {
		fi, err := os.Stat(filepath.Join(ws, "bg"))
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size()
	}
	time.Sleep(200 * time.Millisecond)
	before := size()
	time.Sleep(300 * time.Millisecond)
	if after := size(); after != before || after >= 512<<20 {
		t.Errorf("the writer left behind: %d MiB, then %d MiB", before>>20, after>>20)
	}
	if r := sh(t, s, "cat /proc/[0-9]*/comm | grep -x dd || echo none"); string(r.Stdout) != "none\n" {
		t.Errorf("dd still runs in the session: %q", r.Stdout)
	}
	// The control: the session goes on; a call that writes little, well
	// above the floor once the file is gone, runs.
	if r := sh(t, s, "rm bg && echo ok > small && cat small"); string(r.Stdout) != "ok\n" || len(r.Denials) != 0 {
		t.Errorf("a call after the stop: %q %q %s", r.Stdout, r.Stderr, describe(r.Denials))
	}
}

// TestDiskFreeBelowAlready: a session opened on a filesystem already
// below its floor is warned, cannot fallocate or write_file there, and
// can once a grant lowers the floor.
func TestDiskFreeBelowAlready(t *testing.T) {
	ws := workspace(t)
	free, _ := freeOn(t, ws)
	pol := policy.Default()
	pol.Limits.DiskFree = policy.ByteSize(free + 1<<30)
	s, sub := open(t, ws, pol)
	var start *events.Event
	for start == nil {
		if ev := <-sub.C; ev.Kind == events.SessionStart {
			start = ev
		}
	}
	if w, _ := start.Detail["warnings"].([]string); !strings.Contains(strings.Join(w, "\n"), "below limits.disk_free") {
		t.Errorf("session.start warnings: %q", start.Detail["warnings"])
	}
	r := refused(t, s, "fallocate -l 4096 small", func() {})
	if r.ExitCode == 0 || diskLimit(r, "fallocate", "disk_free") == nil {
		t.Errorf("fallocate of 4 KiB below the floor: exit %d %q %s", r.ExitCode, r.Stderr, describe(r.Denials))
	}
	// A fallocate in the session's own /tmp is refused too: the
	// descriptor can name another file by the time the call runs.
	if r := refused(t, s, "fallocate -l 4096 /tmp/small", func() {}); r.ExitCode == 0 || diskLimit(r, "fallocate", "disk_free") == nil {
		t.Errorf("fallocate in /tmp while the workspace's filesystem is below the floor: exit %d %q", r.ExitCode, r.Stderr)
	}
	err := s.WriteFile(context.Background(), "wf", []byte("data\n"))
	var se *sandbox.Error
	if !errors.As(err, &se) || se.Code != sandbox.CodeDenied || se.Errno != int(syscall.ENOSPC) || len(se.Denials) != 1 || se.Denials[0].Rule != "limits.disk_free" {
		t.Errorf("write_file below the floor: %v", err)
	}
	if _, err := os.Stat(filepath.Join(ws, "wf")); err == nil {
		t.Error("the refused write_file wrote its file")
	}
	// The control: the same, with the floor lowered to nothing.
	if err := s.ApplyGrants([]string{"limit.disk_free:0"}); err != nil {
		t.Fatal(err)
	}
	if r := sh(t, s, "fallocate -l 4096 small && fallocate -l 4096 /tmp/small && echo ok"); string(r.Stdout) != "ok\n" || len(r.Denials) != 0 {
		t.Errorf("fallocate with no floor: %q %q %s", r.Stdout, r.Stderr, describe(r.Denials))
	}
	if err := s.WriteFile(context.Background(), "wf", []byte("data\n")); err != nil {
		t.Errorf("write_file with no floor: %v", err)
	}
}

// TestDiskFreeInodes: files created past the inode floor stop the call;
// with the floor lowered, the same files are created.
func TestDiskFreeInodes(t *testing.T) {
	ws, _ := diskWorkspace(t)
	_, inodes := freeOn(t, ws)
	pol := policy.Default()
	pol.Limits.DiskFreeInodes = inodes - 1000
	s, _ := open(t, ws, pol)
	const create = `mkdir -p d && cd d && i=0; while [ $i -lt 20000 ]; do : > f$i; i=$((i+1)); done; echo done`
	dir := filepath.Join(ws, "d")
	defer os.RemoveAll(dir)
	r := sh(t, s, create)
	ents, _ := os.ReadDir(dir)
	made := len(ents)
	t.Logf("%d files created before the stop", made)
	if e := diskLimit(r, "exec", "disk_free_inodes"); e == nil || r.Signal != "SIGKILL" || made >= 20000 {
		t.Errorf("20000 files under an inode floor 1000 below the free inodes: %d made, signal %q %s", made, r.Signal, describe(r.Denials))
	}
	// Removed from the host: below the floor, a call of the session is
	// stopped by anyone's new file.
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := s.ApplyGrants([]string{"limit.disk_free_inodes:0"}); err != nil {
		t.Fatal(err)
	}
	if r := sh(t, s, create); string(r.Stdout) != "done\n" || len(r.Denials) != 0 {
		t.Errorf("20000 files with no inode floor: %q %s", r.Stdout, describe(r.Denials))
	}
}

// TestDiskWatchersStop: sessions on one filesystem share a watcher,
// and none outlives the sessions (TestIsolation counts goroutines and
// descriptors around sessions that use one).
func TestDiskWatchersStop(t *testing.T) {
	if n := sandbox.DiskWatchers(); n != 0 {
		t.Fatalf("%d disk watchers before any session", n)
	}
	var ss []*sandbox.Session
	for range 2 {
		s, err := sandbox.Open(context.Background(), sandbox.Options{Workspace: workspace(t), Policy: policy.Default()})
		if err != nil {
			t.Fatal(err)
		}
		ss = append(ss, s)
	}
	if n := sandbox.DiskWatchers(); n != 1 {
		t.Errorf("%d disk watchers for two sessions on one filesystem, want 1", n)
	}
	for _, s := range ss {
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if n := sandbox.DiskWatchers(); n != 0 {
		t.Errorf("%d disk watchers after every session closed", n)
	}
}

// TestDiskFreeCleanup: below the floor, someone else's writes stop a
// command of the session that allocates nothing (the host cannot tell
// whose writes they were), but not one that has freed more than they
// take, so that a session can make room.
func TestDiskFreeCleanup(t *testing.T) {
	ws, free := diskWorkspace(t)
	pol := policy.Default()
	pol.Limits.DiskFree = policy.ByteSize(free + 1<<30)
	s, _ := open(t, ws, pol)
	if err := os.WriteFile(filepath.Join(ws, "old"), make([]byte, 32<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	// Someone else on the host, next to the workspace: 256 KiB every
	// 5 ms while writing is set or once the session has removed "old"
	// (32 MiB), at most 96 MiB in all.
	var writing atomic.Bool
	f, err := os.CreateTemp(filepath.Dir(ws), "log-") // on the workspace's filesystem
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(f.Name()) })
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		defer f.Close()
		buf := make([]byte, 256<<10)
		for n := 0; n < 384; {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			if _, err := os.Stat(filepath.Join(ws, "removed")); writing.Load() || err == nil {
				f.Write(buf)
				n++
			}
		}
	}()
	defer func() { close(stop); <-done }()
	// The rest of the host (other tests) writes and deletes as well,
	// which can hide the writer's fall or add one: each step may try
	// three times.
	writing.Store(true)
	for try := range 3 {
		r := sh(t, s, "sleep 0.5; echo slept")
		if r.Signal == "SIGKILL" && diskLimit(r, "exec", "disk_free") != nil {
			break
		}
		t.Logf("try %d: %q signal %q %s", try+1, r.Stdout, r.Signal, describe(r.Denials))
		if try == 2 {
			t.Errorf("a command below the floor while the host writes was not stopped")
		}
	}
	writing.Store(false)
	for try := range 3 {
		r := sh(t, s, "rm old && touch removed && sleep 0.5 && echo made room")
		if string(r.Stdout) == "made room\n" && len(r.Denials) == 0 {
			return
		}
		t.Logf("try %d: %q signal %q %s", try+1, r.Stdout, r.Signal, describe(r.Denials))
		os.Remove(filepath.Join(ws, "removed"))
		if err := os.WriteFile(filepath.Join(ws, "old"), make([]byte, 32<<20), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Errorf("a command that made room while the host writes was stopped three times")
}
