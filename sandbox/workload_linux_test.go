package sandbox_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cordon-sandbox/cordon/events"
	"github.com/cordon-sandbox/cordon/policy"
	"github.com/cordon-sandbox/cordon/sandbox"
)

// TestDefaultPolicyDevelopment runs ordinary development on the default
// policy with no grants: git, a Go build and test, python3, node, make.
func TestDefaultPolicyDevelopment(t *testing.T) {
	for _, tool := range []string{"git", "go", "python3", "node", "make"} {
		if _, err := exec.LookPath(tool); err != nil && tool != "go" {
			t.Fatalf("%s is not installed on this host (.ci/run installs it): %v", tool, err)
		}
	}
	ws := workspace(t)
	s, _ := open(t, ws, nil)
	steps := []struct{ cmd, want string }{
		{"git init -q . && git add -A && git -c user.name=a -c user.email=a@example.com commit -qm init --allow-empty && git log --oneline | wc -l", "1"},
		{"echo x > f && git status --short", "?? f"},
		{"git add f && git diff --cached --stat | tail -1 | cut -d, -f1", "1 file changed"},
		{"mkdir -p m && cd m && printf 'module m\\ngo 1.26\\n' > go.mod && printf 'package main\\nimport \"fmt\"\\nfunc main(){fmt.Println(\"go-ok\")}\\n' > main.go && printf 'package main\\nimport \"testing\"\\nfunc TestM(t *testing.T){}\\n' > m_test.go && go run . && go vet . && go test . | cut -c1-2", "go-ok\nok"},
		{"python3 -c 'import json,sys; print(json.dumps({\"py\": sys.version_info[0]}))'", `{"py": 3}`},
		{"node -e 'console.log(\"node-ok\")'", "node-ok"},
		{"printf 'all:\\n\\t@echo make-ok\\n' > Makefile && make", "make-ok"},
		{"grep -c cordon /etc/passwd && whoami && echo $HOME && ls -d ~", "1\ncordon\n/home/cordon\n/home/cordon"},
	}
	for _, st := range steps {
		r, err := s.Exec(context.Background(), sandbox.ExecRequest{Command: st.cmd, Timeout: 3 * time.Minute})
		if err != nil {
			t.Fatalf("%q: %v", st.cmd, err)
		}
		if got := strings.TrimSpace(string(r.Stdout)); r.ExitCode != 0 || got != st.want {
			t.Errorf("%q: exit %d, stdout %q, want %q; stderr %q", st.cmd, r.ExitCode, got, st.want, r.Stderr)
		}
		if len(r.Denials) != 0 {
			t.Errorf("%q was refused something: %v", st.cmd, r.Denials[0])
		}
	}
	if _, err := os.Stat(filepath.Join(ws, ".git", "HEAD")); err != nil {
		t.Errorf("the repository is not on the host: %v", err)
	}
}

// TestMemoryLimit needs the cgroup a root-started session gets: a command
// that allocates past the session's memory limit is OOM-killed and the
// call reports the memory limit; the same allocation under the limit
// succeeds.
func TestMemoryLimit(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("memory limits are cgroup limits, which only root-started sessions get; rootless sessions fall back to RLIMIT_DATA (documented)")
	}
	pol := policy.Default()
	pol.Limits.Memory = 128 * policy.MiB
	s, _ := open(t, workspace(t), pol)
	alloc := func(mib int) *sandbox.ExecResult {
		return sh(t, s, "python3 -c 'b = bytearray("+itoa(mib)+" << 20); print(len(b))'")
	}
	if r := alloc(32); r.ExitCode != 0 {
		t.Fatalf("control: 32 MiB under a 128 MiB limit: %+v %q", r.ExitCode, r.Stderr)
	}
	r := alloc(512)
	if r.ExitCode == 0 || r.Limit != "memory" {
		t.Fatalf("512 MiB under a 128 MiB limit: exit %d limit %q", r.ExitCode, r.Limit)
	}
	var found bool
	for _, d := range r.Denials {
		found = found || (d.Kind == events.Limit && d.Target == "memory" && d.Remedy != nil)
	}
	if !found {
		t.Errorf("no memory limit event: %v", r.Denials)
	}
	if r := sh(t, s, "echo still-here"); string(r.Stdout) != "still-here\n" {
		t.Errorf("session after the OOM kill: %q", r.Stdout)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
