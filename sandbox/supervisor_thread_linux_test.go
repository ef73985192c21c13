package sandbox_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/cordon-sandbox/cordon/sandbox"
)

// TestGrantsKeepSession applies and revokes a filesystem grant over and
// over: each time the host joins the session's mount namespace on a
// thread that then ends, and the session must survive it (the
// supervisor's parent-death signal follows the thread that started it).
func TestGrantsKeepSession(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("filesystem grants in a live session need a root-started session (TestApplyGrants checks the refusal)")
	}
	// Several sessions: the threads that started their supervisors are
	// the ones the runtime may later hand to the grants' goroutines.
	type sess struct {
		s   *sandbox.Session
		dir string
	}
	var all []sess
	for range 4 {
		ws := workspace(t)
		dir := filepath.Join(ws, "granted")
		os.Mkdir(dir, 0o755)
		s, _ := open(t, ws, nil)
		all = append(all, sess{s, dir})
	}
	for i := range 5 {
		for j, x := range all {
			if err := x.s.ApplyGrants([]string{"fs.write:" + x.dir}); err != nil {
				t.Fatalf("session %d, grant %d: %v", j, i, err)
			}
			if r := sh(t, x.s, fmt.Sprintf("echo %d > granted/f && cat granted/f", i)); string(r.Stdout) != fmt.Sprintf("%d\n", i) {
				t.Fatalf("session %d, call %d under the grant: %q %q", j, i, r.Stdout, r.Stderr)
			}
			if err := x.s.ApplyGrants(nil); err != nil {
				t.Fatalf("session %d, revocation %d: %v", j, i, err)
			}
		}
	}
}
