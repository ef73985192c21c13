package events

import (
	"fmt"
	"strconv"
	"strings"
)

// Explain renders a call's deny and limit events as one paragraph of
// plain text for the agent that made the call: for each distinct denial,
// what was refused (operation and target, as the session named it), why
// (the rule and its reason), how often, and either the capability to
// request or that none can allow it. Other kinds of event are ignored.
// It returns "" when there is nothing to explain.
//
// Identical denials (same Key) are counted together whether or not the
// slice was already folded; the events are not modified.
func Explain(denials []*Event) string {
	type entry struct {
		e     *Event
		count int
	}
	var order []*entry
	seen := map[string]*entry{}
	for _, e := range denials {
		if e == nil || (e.Kind != Deny && e.Kind != Limit) {
			continue
		}
		n := max(countOf(e), 1)
		if x, ok := seen[e.Key()]; ok {
			x.count += n
			continue
		}
		x := &entry{e: e, count: n}
		seen[e.Key()] = x
		order = append(order, x)
	}
	if len(order) == 0 {
		return ""
	}
	var b strings.Builder
	refused := false
	for i, x := range order {
		if i > 0 {
			b.WriteByte(' ')
		}
		if x.e.Kind == Deny {
			refused = true
			explainDeny(&b, x.e, x.count)
		} else {
			explainLimit(&b, x.e, x.count)
		}
		b.WriteString("; ")
		if c := capabilityOf(x.e); c != "" {
			fmt.Fprintf(&b, "request capability %s to allow it.", c)
		} else {
			b.WriteString("no capability can allow this.")
		}
	}
	if refused {
		b.WriteString(" Repeating a refused operation is refused again: change the approach instead.")
	}
	return b.String()
}

func explainDeny(b *strings.Builder, e *Event, count int) {
	b.WriteString("cordon refused ")
	switch {
	case e.Layer == LayerSeccomp:
		fmt.Fprintf(b, "the system call %s", e.Op)
		if e.Target != "" && e.Target != e.Op {
			fmt.Fprintf(b, " on %q", e.Target)
		}
	case e.Op == "":
		fmt.Fprintf(b, "%q", e.Target)
	case e.Target == "":
		b.WriteString(e.Op)
	default:
		fmt.Fprintf(b, "%s %q", e.Op, e.Target)
	}
	times(b, count)
	b.WriteString(" (")
	if e.Layer != "" {
		fmt.Fprintf(b, "%s ", e.Layer)
	}
	fmt.Fprintf(b, "rule %s", orUnknown(e.Rule))
	if r := reasonOf(e); r != "" {
		fmt.Fprintf(b, ": %s", r)
	}
	b.WriteByte(')')
}

func explainLimit(b *strings.Builder, e *Event, count int) {
	limit, _ := e.Detail["limit"].(string)
	if limit == "" {
		limit = e.Target
	}
	fmt.Fprintf(b, "The call reached the %s limit", orUnknown(limit))
	if v := valueOf(e.Detail["value"]); v != "" {
		fmt.Fprintf(b, " of %s", v)
		if _, err := strconv.ParseInt(v, 10, 64); err == nil {
			switch limit {
			case "output", "memory", "tmp", "home", "disk_free":
				b.WriteString(" bytes")
			case "disk_free_inodes":
				b.WriteString(" free inodes")
			}
		}
	}
	times(b, count)
	fmt.Fprintf(b, " (rule %s)", orUnknown(e.Rule))
	switch limit {
	case "timeout":
		b.WriteString(": its processes were killed")
	case "output":
		b.WriteString(": output past the limit was dropped")
	case "memory":
		b.WriteString(": a process was killed for lack of memory")
	case "pids":
		b.WriteString(": a new process or thread was refused")
	case "tmp", "home":
		b.WriteString(": the session's ")
		if limit == "tmp" {
			b.WriteString("/tmp")
		} else {
			b.WriteString("$HOME")
		}
		b.WriteString(" is full and writes there fail until files are removed from it (the workspace has room of its own)")
	case "disk_free", "disk_free_inodes":
		explainDisk(b, e, limit)
	}
}

// explainDisk completes the sentence of a free-space floor: what the
// session did that would cross it, and what became of that.
func explainDisk(b *strings.Builder, e *Event, limit string) {
	what := "free space"
	if limit == "disk_free_inodes" {
		what = "free inodes"
	}
	fs := "a host filesystem the session writes"
	if p, _ := e.Detail["path"].(string); p != "" {
		fs = fmt.Sprintf("the filesystem holding %s", p)
	}
	free := valueOf(e.Detail["free"])
	if free != "" {
		free = " (" + free + ")"
	}
	switch e.Op {
	case "fallocate":
		fmt.Fprintf(b, ": fallocate of %s bytes would have taken the %s of %s%s below it, and failed with ENOSPC", orUnknown(valueOf(e.Detail["requested"])), what, fs, free)
	case "write_file":
		fmt.Fprintf(b, ": the write of %s bytes would have taken the %s of %s%s below it, and was refused", orUnknown(valueOf(e.Detail["requested"])), what, fs, free)
	default:
		fmt.Fprintf(b, ": the %s of %s fell below it%s, and the session's processes were killed", what, fs, free)
	}
	b.WriteString("; removing files there makes room")
}

func times(b *strings.Builder, n int) {
	if n > 1 {
		fmt.Fprintf(b, " %d times", n)
	}
}

func orUnknown(s string) string {
	if s == "" {
		return "(unnamed)"
	}
	return s
}

func capabilityOf(e *Event) string {
	if e.Remedy == nil {
		return ""
	}
	return e.Remedy.Capability
}

func reasonOf(e *Event) string {
	r, _ := e.Detail["reason"].(string)
	return strings.TrimSuffix(strings.TrimSpace(r), ".")
}

// countOf reads detail.count, an int in process and a float64 after a
// JSON round trip.
func countOf(e *Event) int {
	switch n := e.Detail["count"].(type) {
	case int:
		return n
	case int64:
		return int(n)
	case float64:
		return int(n)
	}
	return 0
}

func valueOf(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		return v
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	}
	return fmt.Sprint(v)
}
