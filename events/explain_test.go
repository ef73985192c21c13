package events

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestExplainNothing(t *testing.T) {
	for _, in := range [][]*Event{nil, {}, {{Kind: CallStart}, {Kind: CallEnd}}} {
		if got := Explain(in); got != "" {
			t.Errorf("Explain(%v) = %q, want empty", in, got)
		}
	}
}

func TestExplain(t *testing.T) {
	unshare := &Event{Kind: Deny, Layer: LayerSeccomp, Op: "unshare", Target: "unshare", Rule: "seccomp.deny.unshare_newns",
		Detail: map[string]any{"reason": "unshare with namespace flags CLONE_NEWUSER", "pid": 21}}
	ptrace := &Event{Kind: Deny, Layer: LayerSeccomp, Op: "ptrace", Target: "ptrace", Rule: "seccomp.deny.ptrace",
		Remedy: &Remedy{Capability: "proc.ptrace"}, Detail: map[string]any{"reason": "ptrace is not granted.", "count": 3}}
	read := &Event{Kind: Deny, Layer: LayerPolicy, Op: "read_file", Target: "../x", Rule: "policy.workspace.beneath",
		Detail: map[string]any{"reason": `read_file "../x": path is outside the workspace`}}
	timeout := &Event{Kind: Limit, Layer: LayerLimit, Op: "exec", Target: "timeout", Rule: "limits.timeout",
		Remedy: &Remedy{Capability: "limit.timeout:2s"}, Detail: map[string]any{"limit": "timeout", "value": "1s"}}
	output := &Event{Kind: Limit, Layer: LayerLimit, Op: "exec", Target: "output", Rule: "limits.output",
		Detail: map[string]any{"limit": "output", "value": int64(1024)}}

	got := Explain([]*Event{unshare, ptrace, read, {Kind: CallEnd}, timeout, output})
	want := []string{
		`cordon refused the system call unshare (seccomp rule seccomp.deny.unshare_newns: unshare with namespace flags CLONE_NEWUSER); no capability can allow this.`,
		`cordon refused the system call ptrace 3 times (seccomp rule seccomp.deny.ptrace: ptrace is not granted); request capability proc.ptrace to allow it.`,
		`cordon refused read_file "../x" (policy rule policy.workspace.beneath: read_file "../x": path is outside the workspace); no capability can allow this.`,
		`The call reached the timeout limit of 1s (rule limits.timeout): its processes were killed; request capability limit.timeout:2s to allow it.`,
		`The call reached the output limit of 1024 bytes (rule limits.output): output past the limit was dropped; no capability can allow this.`,
		`Repeating a refused operation is refused again: change the approach instead.`,
	}
	if w := strings.Join(want, " "); got != w {
		t.Errorf("Explain:\n got %s\nwant %s", got, w)
	}
	if strings.Contains(got, "\n") || strings.Contains(got, "21") {
		t.Errorf("not one paragraph, or leaks detail fields other than the reason: %q", got)
	}
	if ptrace.Detail["count"] != 3 || len(unshare.Detail) != 2 {
		t.Errorf("Explain modified its input: %v %v", ptrace.Detail, unshare.Detail)
	}
}

// TestExplainCounts: repeats are counted whether the slice is folded or
// not, and after a JSON round trip (counts become float64).
func TestExplainCounts(t *testing.T) {
	mk := func() *Event {
		return &Event{Kind: Deny, Layer: LayerSeccomp, Op: "mount", Target: "mount", Rule: "seccomp.deny.mount"}
	}
	raw := []*Event{mk(), mk(), mk()}
	want := "cordon refused the system call mount 3 times (seccomp rule seccomp.deny.mount)"
	if got := Explain(raw); !strings.HasPrefix(got, want) {
		t.Errorf("unfolded: %q", got)
	}
	folded := Fold([]*Event{mk(), mk(), mk()})
	if got := Explain(folded); !strings.HasPrefix(got, want) {
		t.Errorf("folded: %q", got)
	}
	b, _ := json.Marshal(folded)
	var decoded []*Event
	if err := json.Unmarshal(b, &decoded); err != nil {
		t.Fatal(err)
	}
	if got := Explain(decoded); !strings.HasPrefix(got, want) {
		t.Errorf("after JSON: %q", got)
	}
}

// TestExplainLimitsOnly: a cut output is no refusal, so no advice to
// change the approach.
func TestExplainLimitsOnly(t *testing.T) {
	got := Explain([]*Event{{Kind: Limit, Target: "pids", Rule: "limits.pids", Remedy: &Remedy{Capability: "limit.pids:256"},
		Detail: map[string]any{"limit": "pids", "value": float64(128)}}})
	want := "The call reached the pids limit of 128 (rule limits.pids): a new process or thread was refused; request capability limit.pids:256 to allow it."
	if got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
}

func TestExplainTmpfs(t *testing.T) {
	got := Explain([]*Event{{Kind: Limit, Target: "tmp", Rule: "limits.tmp",
		Detail: map[string]any{"limit": "tmp", "value": float64(1 << 20)}}})
	want := "The call reached the tmp limit of 1048576 bytes (rule limits.tmp): the session's /tmp is full and writes there fail until files are removed from it (the workspace has room of its own); no capability can allow this."
	if got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
}

func TestExplainDiskFree(t *testing.T) {
	for _, c := range []struct {
		e    *Event
		want string
	}{
		{&Event{Kind: Limit, Op: "exec", Target: "disk_free", Rule: "limits.disk_free", Remedy: &Remedy{Capability: "limit.disk_free:512"},
			Detail: map[string]any{"limit": "disk_free", "value": float64(1024), "free": float64(1000), "path": "/ws"}},
			"The call reached the disk_free limit of 1024 bytes (rule limits.disk_free): the free space of the filesystem holding /ws fell below it (1000), and the session's processes were killed; removing files there makes room; request capability limit.disk_free:512 to allow it."},
		{&Event{Kind: Limit, Op: "fallocate", Target: "disk_free", Rule: "limits.disk_free", Remedy: &Remedy{Capability: "limit.disk_free:512"},
			Detail: map[string]any{"limit": "disk_free", "value": int64(1024), "free": int64(2000), "requested": int64(4096), "path": "/ws"}},
			"The call reached the disk_free limit of 1024 bytes (rule limits.disk_free): fallocate of 4096 bytes would have taken the free space of the filesystem holding /ws (2000) below it, and failed with ENOSPC; removing files there makes room; request capability limit.disk_free:512 to allow it."},
		{&Event{Kind: Limit, Op: "exec", Target: "disk_free_inodes", Rule: "limits.disk_free_inodes",
			Detail: map[string]any{"limit": "disk_free_inodes", "value": 100, "free": 99}},
			"The call reached the disk_free_inodes limit of 100 free inodes (rule limits.disk_free_inodes): the free inodes of a host filesystem the session writes fell below it (99), and the session's processes were killed; removing files there makes room; no capability can allow this."},
	} {
		if got := Explain([]*Event{c.e}); got != c.want {
			t.Errorf("Explain:\n got %s\nwant %s", got, c.want)
		}
	}
}
