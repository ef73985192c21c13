// Package events defines cordon's event schema (version 1) and the bus that
// carries events from the session machinery to its subscribers: the tool
// result of a call, JSONL files, and (later) the daemon's stream.
//
// An event is one JSON object. The schema is documented in docs/events.md;
// fields are only ever added, never renamed.
package events

import (
	"encoding/json"
	"time"
)

// Version is the schema version carried in every event's "v" field.
const Version = 1

// Kind names what happened.
type Kind string

// The event kinds. docs/events.md has an example of each.
const (
	SessionStart Kind = "session.start"
	SessionStop  Kind = "session.stop"
	CallStart    Kind = "call.start"
	CallEnd      Kind = "call.end"
	Deny         Kind = "deny"
	Limit        Kind = "limit"

	// Capability grants (package grants); every one of them is also a
	// record in the audit log.
	GrantRequest  Kind = "grant.request"  // a session asked for a capability
	GrantDecision Kind = "grant.decision" // policy or a person decided a request
	GrantRevoke   Kind = "grant.revoke"   // a person withdrew a granted capability

	// NetConnect is an allowed connection through the egress proxy,
	// emitted when it ends, with its byte counts.
	NetConnect Kind = "net.connect"
)

// Layer names the enforcement layer that produced a deny or limit event.
type Layer string

// Enforcement layers, as in DESIGN.md.
const (
	LayerPolicy   Layer = "policy"
	LayerSeccomp  Layer = "seccomp"
	LayerLandlock Layer = "landlock"
	LayerNet      Layer = "net"
	LayerLimit    Layer = "limit"
)

// Remedy says how an agent could get a refused operation allowed.
type Remedy struct {
	// Capability is the capability name that would allow the operation
	// ("proc.ptrace", "fs.write:/opt/x"); empty when none can.
	Capability string `json:"capability,omitempty"`
}

// Event is one record of the v1 schema.
type Event struct {
	V       int       `json:"v"`
	Time    time.Time `json:"time"`
	Seq     uint64    `json:"seq"`
	Session string    `json:"session"`
	Call    string    `json:"call,omitempty"`
	Kind    Kind      `json:"kind"`
	Layer   Layer     `json:"layer,omitempty"`
	// Op is the operation: "exec", "read_file", a syscall name, "fs.write".
	Op string `json:"op,omitempty"`
	// Target is what the operation was aimed at, as the session named it.
	Target string  `json:"target,omitempty"`
	Rule   string  `json:"rule,omitempty"`
	Remedy *Remedy `json:"remedy,omitempty"`
	// Detail holds kind-specific fields: exit status, byte counts, pid,
	// limit values. Keys are documented per kind in docs/events.md.
	Detail map[string]any `json:"detail,omitempty"`
	// Timing holds per-phase durations in microseconds on call and
	// session events ("total_us", "spawn_us", ...).
	Timing map[string]int64 `json:"timing,omitempty"`
}

// Key identifies a denial for deduplication within a call: two events
// with the same key describe the same refused operation.
func (e *Event) Key() string {
	b, _ := json.Marshal([]string{string(e.Kind), string(e.Layer), e.Op, e.Target, e.Rule})
	return string(b)
}

// Fold folds identical denials (same Key) into the first of them, counting
// repeats in Detail["count"]. It returns a new slice; the events are
// shared, not copied.
func Fold(in []*Event) []*Event {
	if len(in) < 2 {
		return in
	}
	first := make(map[string]*Event, len(in))
	out := make([]*Event, 0, len(in))
	for _, e := range in {
		k := e.Key()
		if f, ok := first[k]; ok {
			n, _ := f.Detail["count"].(int)
			if n == 0 {
				n = 1
			}
			f.Detail["count"] = n + 1
			continue
		}
		if e.Detail == nil {
			e.Detail = map[string]any{}
		}
		first[k] = e
		out = append(out, e)
	}
	return out
}
