package mcpserver

import (
	"bytes"
	"encoding/json"
	"io"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
)

// FuzzStdioFilter: whatever a client writes, every line is either passed
// on as one JSON-RPC message or answered with one JSON-RPC error, and
// nothing panics.
func FuzzStdioFilter(f *testing.F) {
	f.Add([]byte(`{"jsonrpc":"2.0","id":1,"method":"tools/list"}` + "\n"))
	f.Add([]byte("[1]\n{\"jsonrpc\":\"2.0\",\"id\":{}}\n\n  \n\x00\xff"))
	f.Add([]byte(`{"jsonrpc":"2.0","id":"x","result":{}}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		pr, pw := io.Pipe()
		var passed []byte
		done := make(chan struct{})
		go func() { passed, _ = io.ReadAll(pr); close(done) }()
		var answers bytes.Buffer
		filterLines(bytes.NewReader(in), pw, &answers, 64)
		<-done
		for _, l := range bytes.Split(bytes.TrimSuffix(passed, []byte("\n")), []byte("\n")) {
			if len(l) == 0 {
				continue
			}
			if _, err := jsonrpc.DecodeMessage(l); err != nil {
				t.Errorf("passed on %q: %v", l, err)
			}
		}
		for _, l := range strings.Split(strings.TrimSuffix(answers.String(), "\n"), "\n") {
			if l == "" {
				continue
			}
			var m struct {
				JSONRPC string
				Error   *jsonrpc.Error
			}
			if err := json.Unmarshal([]byte(l), &m); err != nil || m.JSONRPC != "2.0" || m.Error == nil {
				t.Errorf("answer %q: %v", l, err)
			}
		}
	})
}

// FuzzGlob: no pattern or name makes the glob code panic, and a full
// match always allows the walk to reach it.
func FuzzGlob(f *testing.F) {
	f.Add("**/*.go", "a/b/c.go")
	f.Add("a/**/[b-c]?/**", ".x/b/cd")
	f.Fuzz(func(t *testing.T, pattern, name string) {
		pat, err := parseGlob(pattern)
		if err != nil {
			return
		}
		parts := strings.Split(name, "/")
		if globMatch(pat, parts, false) {
			for i := 1; i < len(parts); i++ {
				if !globMatch(pat, parts[:i], true) {
					t.Errorf("%q matches %q, but the walk would not enter %q", pattern, name, strings.Join(parts[:i], "/"))
				}
			}
		}
	})
}
