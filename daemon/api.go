// Package daemon is cordon's long-running server: it keeps sessions open
// across tool calls and serves the HTTP API v1 over a unix socket, where
// the peer credentials of each connection say who is calling.
package daemon

import (
	"encoding/base64"
	"encoding/json"
	"time"
	"unicode/utf8"

	"github.com/cordon-sandbox/cordon/events"
	"github.com/cordon-sandbox/cordon/grants"
)

// API v1 bodies. The field names are a contract (docs/api.md).

// MaxWait is the longest a request may wait for a grant's decision
// (GET /v1/grants/{id}?wait=...); a client that wants longer asks again.
const MaxWait = 10 * time.Minute

// CreateRequest is the body of POST /v1/sessions.
type CreateRequest struct {
	Workspace string `json:"workspace"`
	// Policy is policy YAML text; empty means the daemon's policy.
	Policy string `json:"policy,omitempty"`
}

// CreateResponse is the answer of POST /v1/sessions.
type CreateResponse struct {
	ID string `json:"id"`
}

// SessionInfo is one entry of GET /v1/sessions.
type SessionInfo struct {
	ID        string    `json:"id"`
	Workspace string    `json:"workspace"`
	Created   time.Time `json:"created"`
}

// ExecRequest is the body of POST /v1/sessions/{id}/exec.
type ExecRequest struct {
	Argv    []string `json:"argv,omitempty"`
	Command string   `json:"command,omitempty"`
	Stdin   string   `json:"stdin,omitempty"`
	// StdinBase64 carries stdin that is not text; at most one of
	// Stdin and StdinBase64.
	StdinBase64    string            `json:"stdin_base64,omitempty"`
	Env            map[string]string `json:"env,omitempty"`
	Cwd            string            `json:"cwd,omitempty"`
	TimeoutMS      int64             `json:"timeout_ms,omitempty"`
	MaxOutputBytes int64             `json:"max_output_bytes,omitempty"`
}

// NetworkAllowRequest is the body of POST /v1/sessions/{id}/network/allow:
// host patterns in the syntax of the policy's network.allow.
type NetworkAllowRequest struct {
	Hosts []string `json:"hosts"`
}

// NetworkAllowResponse is its answer: the session's whole allowlist after
// the change.
type NetworkAllowResponse struct {
	Allow []string `json:"allow"`
}

// GrantRequest is the body of POST /v1/sessions/{id}/grants: a request
// for a capability (docs/grants.md has the catalog) with the reason a
// person reads, and how long a grant would last: scope "call" (the next
// command), "session", or "ttl" with TTLSeconds.
type GrantRequest struct {
	Capability string `json:"capability"`
	Reason     string `json:"reason"`
	Scope      string `json:"scope"`
	TTLSeconds int64  `json:"ttl_s,omitempty"`
}

// DecisionRequest is the optional body of POST /v1/grants/{id}/approve,
// /deny and /revoke.
type DecisionRequest struct {
	Note string `json:"note,omitempty"`
}

// Grant is a capability grant as the API shows it: the answer of every
// grant endpoint, one entry of GET /v1/grants.
type Grant struct {
	ID         string `json:"id"`
	Session    string `json:"session"`
	Capability string `json:"capability"` // as recorded: net hosts in lowercase
	Reason     string `json:"reason"`
	Scope      string `json:"scope"`
	TTLSeconds int64  `json:"ttl_s,omitempty"`
	// State is "pending", "granted", "denied", "expired", "revoked" or
	// "used" (a call-scoped grant whose call ended).
	State string `json:"state"`
	// Decision is the last decision: "auto", "ask" or "never" by policy,
	// then "approved" or "denied" by a person; DecidedBy the policy rule
	// ("policy:capabilities.ask[0]", "policy" when none matched) or the
	// person ("uid:1000").
	Decision  string     `json:"decision"`
	DecidedBy string     `json:"decided_by"`
	Note      string     `json:"note,omitempty"`
	UID       int        `json:"uid"` // who asked
	Created   time.Time  `json:"created"`
	Decided   *time.Time `json:"decided,omitempty"`
	Expires   *time.Time `json:"expires,omitempty"` // a granted ttl grant
	Ended     *time.Time `json:"ended,omitempty"`
	// EndedBy is what ended it: "uid:N" (revoked), "ttl", "call",
	// "session".
	EndedBy string `json:"ended_by,omitempty"`
	// UsedBy is the first call that ran under the grant.
	UsedBy string `json:"used_by,omitempty"`
}

func grantOf(g *grants.Grant) *Grant {
	t := func(v time.Time) *time.Time {
		if v.IsZero() {
			return nil
		}
		v = v.UTC()
		return &v
	}
	return &Grant{
		ID: g.ID, Session: g.Session, Capability: g.Capability, Reason: g.Reason, Scope: string(g.Scope),
		TTLSeconds: int64(g.TTL / time.Second), State: string(g.State), Decision: g.Decision, DecidedBy: g.DecidedBy,
		Note: g.Note, UID: g.UID, Created: g.Created.UTC(), Decided: t(g.Decided), Expires: t(g.Expires),
		Ended: t(g.Ended), EndedBy: g.EndedBy, UsedBy: g.UsedBy,
	}
}

// ErrorBody is every error answer: {"error": {"code", "message"}}, plus
// the denials behind a 403 and their explanation for the agent
// (events.Explain).
type ErrorBody struct {
	Error       ErrorDetail     `json:"error"`
	Denials     []*events.Event `json:"denials,omitempty"`
	Explanation string          `json:"explanation,omitempty"`
}

// ErrorDetail names an error for programs (code) and people (message).
type ErrorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// OutputFrame is a frame of a streamed exec: stdout or stderr as it
// arrives (text, or base64 when the chunk is not valid UTF-8), or the
// final result.
type OutputFrame struct {
	Stdout       string          `json:"stdout,omitempty"`
	Stderr       string          `json:"stderr,omitempty"`
	StdoutBase64 string          `json:"stdout_base64,omitempty"`
	StderrBase64 string          `json:"stderr_base64,omitempty"`
	Result       json.RawMessage `json:"result,omitempty"`
}

func outputFrame(stream string, data []byte) OutputFrame {
	var f OutputFrame
	text, b64 := string(data), ""
	if !utf8.Valid(data) {
		text, b64 = "", base64.StdEncoding.EncodeToString(data)
	}
	if stream == "stderr" {
		f.Stderr, f.StderrBase64 = text, b64
	} else {
		f.Stdout, f.StdoutBase64 = text, b64
	}
	return f
}
