package sandbox

import "github.com/cordon-sandbox/cordon/events"

// Error codes of Error, stable for callers to branch on.
const (
	CodeInvalid     = "invalid"     // bad input: a malformed path, an empty command
	CodeDenied      = "denied"      // refused by policy or the kernel
	CodeNotFound    = "not_found"   // no such file
	CodeClosed      = "closed"      // the session is closed
	CodeUnsupported = "unsupported" // this host cannot run sessions
	CodeFailed      = "failed"      // cordon's own failure
)

// Error is a failure of a session or call, as opposed to a command that
// ran and failed. Message is written for the agent: it never names host
// paths the session cannot see.
type Error struct {
	Code    string
	Message string
	// Denials are the deny events behind a CodeDenied error.
	Denials []*events.Event
	// Errno is the kernel's error number, when one caused the error.
	Errno int
}

func (e *Error) Error() string { return e.Message }
