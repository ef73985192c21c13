package mcpserver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/google/jsonschema-go/jsonschema"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/cordon-sandbox/cordon/events"
	"github.com/cordon-sandbox/cordon/sandbox"
)

// addTool registers a tool whose arguments decode into In. Its input
// schema is In's (field descriptions from `jsonschema` tags), adjusted
// by fix when fix is not nil. Arguments that do not satisfy the schema,
// or do not decode into In, are answered with a JSON-RPC invalid-params
// error before h runs, and so are the *invalidArgs errors h returns.
func addTool[In any](s *mcp.Server, tool *mcp.Tool, fix func(*jsonschema.Schema),
	h func(context.Context, *mcp.CallToolRequest, In) (*mcp.CallToolResult, error)) {
	schema, err := jsonschema.For[In](nil)
	if err != nil {
		panic(fmt.Sprintf("input schema of %s: %v", tool.Name, err)) // a programming error
	}
	if fix != nil {
		fix(schema)
	}
	resolved, err := schema.Resolve(nil)
	if err != nil {
		panic(fmt.Sprintf("input schema of %s: %v", tool.Name, err))
	}
	tool.InputSchema = schema
	s.AddTool(tool, func(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		raw := req.Params.Arguments
		if len(bytes.TrimSpace(raw)) == 0 || string(bytes.TrimSpace(raw)) == "null" {
			raw = json.RawMessage("{}")
		}
		var v any
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, invalidParams(tool.Name, err.Error(), nil)
		}
		if err := resolved.Validate(v); err != nil {
			return nil, invalidParams(tool.Name, err.Error(), nil)
		}
		var in In
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&in); err != nil {
			return nil, invalidParams(tool.Name, err.Error(), nil)
		}
		res, err := h(ctx, req, in)
		if ia, ok := errors.AsType[*invalidArgs](err); ok {
			return nil, invalidParams(tool.Name, ia.msg, ia.denials)
		}
		return res, err
	})
}

// invalidArgs is a handler's verdict that its arguments are unusable:
// the client gets a JSON-RPC invalid-params error.
type invalidArgs struct {
	msg     string
	denials []*events.Event
}

func (e *invalidArgs) Error() string { return e.msg }

func badArgs(format string, args ...any) error {
	return &invalidArgs{msg: fmt.Sprintf(format, args...)}
}

// invalidParams is the JSON-RPC error for unusable arguments; the deny
// events the session recorded for them, if any, ride in its data.
func invalidParams(tool, msg string, denials []*events.Event) error {
	e := &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: fmt.Sprintf("invalid arguments for tool %s: %s", tool, msg)}
	if len(denials) > 0 {
		e.Data, _ = json.Marshal(map[string]any{"denials": denials})
	}
	return e
}

// result is a tool result: text for the model, the same facts as
// structuredContent. Every structured result has a "denials" array.
func result(isError bool, text string, structured map[string]any) *mcp.CallToolResult {
	if _, ok := structured["denials"]; !ok {
		structured["denials"] = []*events.Event{}
	}
	return &mcp.CallToolResult{IsError: isError, Content: []mcp.Content{&mcp.TextContent{Text: printable(text)}}, StructuredContent: structured}
}

// printable makes text safe for a client to print on a terminal: tool
// output is the session's to choose, and raw control characters in it
// (ESC starting an OSC 52 clipboard write, an OSC 8 link, a CSI report
// request; a C1 CSI; a carriage return or backspace hiding what came
// before) would act on the terminal of the person watching the agent.
// Each control character other than newline and tab is written as a Go
// escape (\x1b, \r, \u009b), so the model still sees that it was there.
// structuredContent keeps the exact text, JSON-escaped.
func printable(text string) string {
	clean := true
	for _, r := range text {
		if isControl(r) {
			clean = false
			break
		}
	}
	if clean {
		return text
	}
	var b strings.Builder
	for _, r := range text {
		if isControl(r) {
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

func isControl(r rune) bool {
	return r != '\n' && r != '\t' && (r < 0x20 || r == 0x7f || r >= 0x80 && r <= 0x9f)
}

// toolError turns a failed call into its result. A session error the
// caller's input caused (sandbox.CodeInvalid) becomes an invalidArgs
// error instead, which addTool answers as a JSON-RPC error.
func toolError(err error) *mcp.CallToolResult {
	se, ok := errors.AsType[*sandbox.Error](err)
	if !ok {
		return result(true, err.Error(), map[string]any{"error": map[string]any{"code": sandbox.CodeFailed, "message": err.Error()}})
	}
	text := se.Message
	structured := map[string]any{"error": map[string]any{"code": se.Code, "message": se.Message}}
	if len(se.Denials) > 0 {
		explanation := events.Explain(se.Denials)
		text += "\n" + explanation
		structured["denials"] = se.Denials
		structured["explanation"] = explanation
	}
	return result(true, text, structured)
}

// callError is what a handler returns for a session call's error: the
// invalid-params error for bad input, a tool error otherwise.
func callError(err error) (*mcp.CallToolResult, error) {
	if se, ok := errors.AsType[*sandbox.Error](err); ok && se.Code == sandbox.CodeInvalid {
		return nil, &invalidArgs{msg: se.Message, denials: se.Denials}
	}
	if errors.Is(err, context.Canceled) {
		return nil, err // the client cancelled: it reads no result
	}
	return toolError(err), nil
}

func boolPtr(b bool) *bool { return &b }
