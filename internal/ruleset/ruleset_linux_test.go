package ruleset

import (
	"testing"

	ll "github.com/landlock-lsm/go-landlock/landlock/syscall"
	"golang.org/x/sys/unix"

	"github.com/cordon-sandbox/cordon/internal/plan"
)

// TestLogNewExecFlag checks that Options.LogNewExec, and only it, puts
// LANDLOCK_RESTRICT_SELF_LOG_NEW_EXEC_ON in the flags for
// landlock_restrict_self(2). Building a ruleset restricts nothing.
func TestLogNewExecFlag(t *testing.T) {
	abi, err := ll.LandlockGetABIVersion()
	if err != nil || abi < 1 {
		t.Skipf("no Landlock here: %v", err)
	}
	p := &plan.Plan{Home: t.TempDir(), Workspace: t.TempDir(), WorkspaceWritable: true}
	for _, tc := range []struct {
		opts Options
		want bool
	}{
		{Options{}, false},
		{Options{LogNewExec: true}, abi >= 7}, // best effort: left out below ABI 7
	} {
		fd, flags, err := ForOptions(p, tc.opts)
		if err != nil {
			t.Fatalf("ForOptions(%+v): %v", tc.opts, err)
		}
		unix.Close(fd)
		if got := flags&ll.FlagRestrictSelfLogNewExecOn != 0; got != tc.want {
			t.Errorf("ForOptions(%+v) flags %#x: LOG_NEW_EXEC_ON %v, want %v (ABI %d)", tc.opts, flags, got, tc.want, abi)
		}
		if flags&^ll.FlagRestrictSelfLogNewExecOn != 0 {
			t.Errorf("ForOptions(%+v) flags %#x: more than LOG_NEW_EXEC_ON", tc.opts, flags)
		}
	}
	fd, flags, err := For(p)
	if err != nil {
		t.Fatal(err)
	}
	unix.Close(fd)
	if flags != 0 {
		t.Errorf("For flags %#x, want 0", flags)
	}
}

// TestWritable checks the model of what the ruleset lets the session
// write, which the supervisor's write observer predicts refusals from.
func TestWritable(t *testing.T) {
	p := &plan.Plan{
		Home: "/home/cordon", Workspace: "/work/ws", WorkspaceWritable: true,
		Binds: []plan.Bind{
			{Target: "/usr", Kind: plan.BindDir},
			{Target: "/opt/cache", Kind: plan.BindDir, Writable: true},
			{Target: "/etc/app.conf", Kind: plan.BindFile, Writable: true},
			{Target: "/bin", Kind: plan.BindSymlink, Writable: true},
		},
	}
	w := WritableOf(p)
	for path, want := range map[string]bool{
		"/tmp": true, "/tmp/x/y": true, "/home/cordon/.cache": true, "/dev/shm/q": true,
		"/work/ws": true, "/work/ws/a": true, "/opt/cache/z": true, "/etc/app.conf": true,
		"/dev/null": true, "/dev/tty": true, "/dev/pts/0": true,
		"/usr/x": false, "/work/wsx": false, "/work": false, "/proc/1/comm": false,
		"/dev/nullx": false, "/dev": false, "/": false, "/bin/x": false, "/etc/app.conf2": false,
		"/tmpfoo": false, "/home": false,
	} {
		if got := w.Allows(path); got != want {
			t.Errorf("Allows(%q) = %v, want %v", path, got, want)
		}
	}
	p.WorkspaceWritable = false
	if WritableOf(p).Allows("/work/ws/a") {
		t.Errorf("a read-only workspace is writable")
	}
}
