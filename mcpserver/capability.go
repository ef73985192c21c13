package mcpserver

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/google/jsonschema-go/jsonschema"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/cordon-sandbox/cordon/daemon"
	"github.com/cordon-sandbox/cordon/grants"
)

// Grants is how request_capability asks for capabilities. A cordon
// daemon (*daemon.Server) is one: the server's sessions are the daemon's,
// and a person decides what waits on them over the daemon's socket.
type Grants interface {
	// RequestGrant asks for a capability for the session with the given
	// ID. Errors are *daemon.APIError.
	RequestGrant(ctx context.Context, session string, r daemon.GrantRequest) (*daemon.Grant, error)
	// WaitGrant waits until the session's grant id is decided, or ctx
	// ends, and returns it as it is then.
	WaitGrant(ctx context.Context, session, id string) (*daemon.Grant, error)
	// SessionGrants returns the session's grants in a state ("" for all).
	SessionGrants(session, state string) []*daemon.Grant
}

// Default and longest wait of request_capability for a person.
const (
	DefaultCapabilityWait = 60 * time.Second
	MaxCapabilityWait     = 10 * time.Minute
)

type capabilityArgs struct {
	Capability string   `json:"capability" jsonschema:"The capability: net.connect:HOST or net.connect:HOST:PORT, fs.read:PATH, fs.write:PATH, proc.ptrace, limit.memory:SIZE (8GiB), limit.pids:N, limit.timeout:DURATION (20m), limit.disk_free:SIZE (a lower floor under the free disk space, 512MiB), limit.disk_free_inodes:N. A refusal in a tool result names the capability that would allow it."`
	Reason     string   `json:"reason" jsonschema:"Why the task needs it, in one sentence for the person who decides."`
	Scope      string   `json:"scope" jsonschema:"How long a grant lasts: call (the next bash command only), session (until this session ends), or ttl (ttl_s seconds)."`
	TTLS       int64    `json:"ttl_s,omitempty" jsonschema:"With scope ttl: how many seconds the grant lasts, at most 86400."`
	WaitS      *float64 `json:"wait_s,omitempty" jsonschema:"How long to wait, in seconds, for a person when the policy leaves the decision to one. Default 60, at most 600; 0 answers at once."`
}

const capabilityDescription = `Ask for a capability that the sandbox's policy does not give this session: reaching a host (net.connect), reading or writing a host path outside the view (fs.read, fs.write), tracing processes (proc.ptrace), or a higher limit (limit.memory, limit.pids, limit.timeout) or a lower free-disk floor (limit.disk_free, limit.disk_free_inodes).

The session's policy grants the capability at once, refuses it, or leaves it to a person; this tool then waits up to wait_s for their decision. The answer is granted (it applies from the next call), denied (do not ask again for the same thing: change the approach), or pending, with how a person approves it. Asking again for a capability that is still pending waits for the same request instead of making a new one.

Ask only for what the task needs, with the narrowest scope that does: call for one command, session or ttl for more.`

func (t *tools) addRequestCapability(s *mcp.Server, g Grants) {
	addTool(s, &mcp.Tool{
		Name: "request_capability", Title: "Ask for a capability (sandbox grant)", Description: capabilityDescription,
		Annotations: &mcp.ToolAnnotations{Title: "Ask for a capability (sandbox grant)", DestructiveHint: boolPtr(false), OpenWorldHint: boolPtr(false)},
	}, func(s *jsonschema.Schema) {
		s.Properties["capability"].MinLength = intPtr(1)
		s.Properties["reason"].MinLength = intPtr(1)
		s.Properties["reason"].MaxLength = intPtr(grants.MaxReason)
		s.Properties["scope"].Enum = []any{"call", "session", "ttl"}
		s.Properties["ttl_s"].Minimum = floatPtr(1)
		s.Properties["ttl_s"].Maximum = floatPtr(grants.MaxTTL.Seconds())
		w := s.Properties["wait_s"]
		w.Types, w.Type = nil, "number"
		w.Minimum, w.Maximum = floatPtr(0), floatPtr(MaxCapabilityWait.Seconds())
	}, func(ctx context.Context, req *mcp.CallToolRequest, in capabilityArgs) (*mcp.CallToolResult, error) {
		return t.requestCapability(ctx, req, g, in)
	})
}

func (t *tools) requestCapability(ctx context.Context, req *mcp.CallToolRequest, g Grants, in capabilityArgs) (*mcp.CallToolResult, error) {
	if (in.Scope == "ttl") != (in.TTLS > 0) {
		return nil, badArgs("ttl_s goes with scope ttl, and scope ttl needs ttl_s")
	}
	wait := DefaultCapabilityWait
	if in.WaitS != nil {
		wait = time.Duration(*in.WaitS * float64(time.Second))
	}
	sess, failed := t.session(ctx, req)
	if failed != nil {
		return failed, nil
	}
	id := sess.ID()
	var notes []string
	grant := waiting(g.SessionGrants(id, "pending"), in)
	if grant != nil {
		notes = append(notes, fmt.Sprintf("A request for %s was already waiting (grant %s); this answer is about that request, not a new one.", grant.Capability, grant.ID))
	} else {
		var err error
		grant, err = g.RequestGrant(ctx, id, daemon.GrantRequest{Capability: in.Capability, Reason: in.Reason, Scope: in.Scope, TTLSeconds: in.TTLS})
		if err != nil {
			if ae, ok := errors.AsType[*daemon.APIError](err); ok && ae.Status == http.StatusBadRequest {
				return nil, badArgs("%s", ae.Body.Error.Message)
			}
			return toolError(fmt.Errorf("the capability request failed: %w", err)), nil
		}
	}
	if grant.State == "pending" && wait > 0 {
		wctx, cancel := context.WithTimeout(ctx, wait)
		w, err := g.WaitGrant(wctx, id, grant.ID)
		cancel()
		switch {
		case ctx.Err() != nil:
			return nil, ctx.Err() // the client cancelled: it reads no result
		case err != nil:
			return toolError(fmt.Errorf("waiting for the decision: %w", err)), nil
		}
		grant = w
	}
	return capabilityResult(grant, wait, t.opts.GrantSocket, notes), nil
}

// waiting returns the pending grant of the same request, if any.
func waiting(pending []*daemon.Grant, in capabilityArgs) *daemon.Grant {
	name, err := grants.CheckCapability(in.Capability)
	if err != nil {
		return nil
	}
	for _, g := range pending {
		if g.Capability == name && g.Scope == in.Scope && g.TTLSeconds == in.TTLS {
			return g
		}
	}
	return nil
}

// capabilityResult tells the model what became of its request.
func capabilityResult(g *daemon.Grant, waited time.Duration, socket string, notes []string) *mcp.CallToolResult {
	var b strings.Builder
	structured := map[string]any{
		"id": g.ID, "capability": g.Capability, "state": g.State, "scope": g.Scope,
		"decision": g.Decision, "decided_by": g.DecidedBy,
	}
	if g.TTLSeconds > 0 {
		structured["ttl_s"] = g.TTLSeconds
	}
	if g.Note != "" {
		structured["note"] = g.Note
	}
	by := "by a person (" + g.DecidedBy + ")"
	if strings.HasPrefix(g.DecidedBy, "policy") {
		by = "by the session's policy"
		if rule, ok := strings.CutPrefix(g.DecidedBy, "policy:"); ok {
			by += " (rule " + rule + ")"
		}
	}
	switch g.State {
	case "granted":
		fmt.Fprintf(&b, "Granted: %s, %s. ", g.Capability, by)
		switch {
		case g.Scope == "call":
			b.WriteString("It applies to the next bash command only.")
		case g.Expires != nil:
			fmt.Fprintf(&b, "It applies from the next call until %s (%ds).", g.Expires.Format(time.RFC3339), g.TTLSeconds)
		default:
			b.WriteString("It applies from the next call until the session ends.")
		}
	case "denied":
		fmt.Fprintf(&b, "Denied: %s, %s.", g.Capability, by)
		switch {
		case g.Decision == "never" || g.DecidedBy == "policy":
			b.WriteString(" The policy does not let anyone grant it: asking again will not change that. Change the approach.")
		default:
			b.WriteString(" Do not ask again for the same thing unless the situation changes; change the approach.")
		}
	case "pending":
		approve := fmt.Sprintf("cordon grant approve %s --socket %s", g.ID, socket)
		deny := fmt.Sprintf("cordon grant deny %s --socket %s", g.ID, socket)
		structured["approve"], structured["deny"] = approve, deny
		fmt.Fprintf(&b, "Pending: %s waits for a person to approve it (grant %s; waited %s). To approve it, a person runs:\n\n    %s\n\n(or denies it with `%s`). Tell the user this if they may not be watching. Calling request_capability again with the same capability and scope waits for this request rather than making a new one.",
			g.Capability, g.ID, waited.Round(time.Second), approve, deny)
	default:
		fmt.Fprintf(&b, "The request for %s ended without a grant (state %s, ended by %s).", g.Capability, g.State, g.EndedBy)
	}
	if g.Note != "" {
		fmt.Fprintf(&b, "\nNote from whoever decided: %s", g.Note)
	}
	for _, n := range notes {
		b.WriteString("\n" + n)
	}
	return result(false, b.String(), structured)
}
