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
)

// API v1 bodies. The field names are a contract (docs/api.md).

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

// ErrorBody is every error answer: {"error": {"code", "message"}}, plus
// the denials behind a 403.
type ErrorBody struct {
	Error   ErrorDetail     `json:"error"`
	Denials []*events.Event `json:"denials,omitempty"`
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
