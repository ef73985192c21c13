package mcpserver

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// DefaultMaxMessage is the default of StdioTransport.MaxMessage, and
// the body limit of the HTTP transport.
const DefaultMaxMessage = 16 << 20

// StdioTransport serves MCP as newline-delimited JSON-RPC on In and Out,
// as mcp.StdioTransport does, with one difference: a line that is not
// one well-formed JSON-RPC message — not JSON, not a message, a batch
// (MCP has none since 2025-06-18), or longer than MaxMessage — is
// answered with a JSON-RPC error and skipped, where the SDK's transport
// would end the connection. A client's mistake costs it one request,
// not the session.
type StdioTransport struct {
	In  io.Reader
	Out io.Writer
	// MaxMessage bounds one line; zero means DefaultMaxMessage.
	MaxMessage int
}

// Connect implements mcp.Transport. The lines that pass go on to the
// SDK's own newline-delimited transport through a pipe; both write to
// Out one whole line at a time.
func (t *StdioTransport) Connect(ctx context.Context) (mcp.Connection, error) {
	max := t.MaxMessage
	if max <= 0 {
		max = DefaultMaxMessage
	}
	out := &lineWriter{w: t.Out}
	pr, pw := io.Pipe()
	go filterLines(t.In, pw, out, max)
	return (&mcp.IOTransport{Reader: pr, Writer: out, MaxLineLength: max + 1}).Connect(ctx)
}

// lineWriter serializes writes to the client. The SDK writes each
// message with one Write; so does filterLines.
type lineWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lineWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// Close leaves the writer open: it is the process's stdout.
func (l *lineWriter) Close() error { return nil }

// filterLines copies the good lines of in to pw and answers the bad
// ones on out. It ends at the end of in, closing pw, or when the
// connection has closed pw's reader.
func filterLines(in io.Reader, pw *io.PipeWriter, out io.Writer, max int) {
	r := bufio.NewReaderSize(in, 64<<10)
	var line []byte
	long := false
	for {
		chunk, err := r.ReadSlice('\n')
		if len(line)+len(chunk) > max {
			long, line = true, line[:0]
		} else if !long {
			line = append(line, chunk...)
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if err == nil || (err == io.EOF && (len(line) > 0 || long)) {
			if long {
				writeError(out, nil, jsonrpc.CodeInvalidRequest, fmt.Sprintf("message longer than %d bytes", max))
			} else if good := checkLine(out, line); good != nil {
				if _, werr := pw.Write(append(good, '\n')); werr != nil {
					return // the connection is closed
				}
			}
			line, long = line[:0], false
		}
		if err != nil {
			pw.CloseWithError(err)
			return
		}
	}
}

// checkLine returns the line if it is one JSON-RPC message the SDK will
// take, and answers it with an error otherwise. Blank lines are
// skipped.
func checkLine(out io.Writer, line []byte) []byte {
	line = bytes.TrimSpace(line)
	switch {
	case len(line) == 0:
		return nil
	case !json.Valid(line):
		writeError(out, nil, jsonrpc.CodeParseError, "parse error: the line is not valid JSON")
		return nil
	case line[0] != '{':
		writeError(out, nil, jsonrpc.CodeInvalidRequest, "invalid request: expected one JSON-RPC message object (batches are not supported)")
		return nil
	}
	if _, err := jsonrpc.DecodeMessage(line); err != nil {
		var m struct {
			ID json.RawMessage `json:"id"`
		}
		json.Unmarshal(line, &m)
		writeError(out, m.ID, jsonrpc.CodeInvalidRequest, "invalid request: "+err.Error())
		return nil
	}
	return line
}

// writeError answers a request the SDK never sees. The id is echoed
// when it is a valid one (a string or a number), null otherwise.
func writeError(out io.Writer, id json.RawMessage, code int64, msg string) {
	var v any
	if json.Unmarshal(id, &v) != nil || v == nil {
		id = json.RawMessage("null")
	} else if _, err := jsonrpc.MakeID(v); err != nil {
		id = json.RawMessage("null")
	}
	b, _ := json.Marshal(struct {
		JSONRPC string          `json:"jsonrpc"`
		ID      json.RawMessage `json:"id"`
		Error   jsonrpc.Error   `json:"error"`
	}{"2.0", id, jsonrpc.Error{Code: code, Message: msg}})
	out.Write(append(b, '\n'))
}
