package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestMCPInspector drives `cordon mcp` with the CLI mode of the MCP
// Inspector (@modelcontextprotocol/inspector@0.15.0), a client that is
// not ours. CORDON_MCP_INSPECTOR names its mcp-inspector binary; .ci/run
// installs it. Without it the test skips, except in CI (CI set) or with
// CORDON_REQUIRE_INSPECTOR=1, where a missing inspector is a failure.
func TestMCPInspector(t *testing.T) {
	inspector := os.Getenv("CORDON_MCP_INSPECTOR")
	if inspector == "" {
		if os.Getenv("CI") != "" || os.Getenv("CORDON_REQUIRE_INSPECTOR") == "1" {
			t.Fatal("CORDON_MCP_INSPECTOR is not set, and CI or CORDON_REQUIRE_INSPECTOR requires the MCP Inspector test (.ci/run installs it)")
		}
		t.Skip("CORDON_MCP_INSPECTOR is not set: point it at node_modules/.bin/mcp-inspector of @modelcontextprotocol/inspector@0.15.0 (.ci/run installs it)")
	}
	if _, err := os.Stat(inspector); err != nil {
		t.Fatalf("CORDON_MCP_INSPECTOR: %v", err)
	}
	ws := workspace(t)
	os.WriteFile(filepath.Join(ws, "hello.txt"), []byte("hello from the workspace\n"), 0o644)
	run := func(args ...string) (stdout string, ok bool) {
		t.Helper()
		argv := append([]string{"--cli", "-e", "CORDON_TEST_MAIN=1", os.Args[0], "mcp", "--workspace", ws}, args...)
		cmd := exec.Command(inspector, argv...)
		cmd.Env = append(os.Environ(), "CORDON_TEST_MAIN=1")
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		if _, exited := err.(*exec.ExitError); err != nil && !exited {
			t.Fatalf("running the inspector: %v", err)
		}
		if err != nil {
			t.Logf("inspector %v: %v\n%s", args, err, errb.String())
		}
		return out.String(), err == nil
	}
	type result struct {
		Tools []struct {
			Name        string
			Description string
			InputSchema map[string]any
		}
		Content []struct {
			Type, Text string
		}
		IsError           bool
		StructuredContent struct {
			Denials []struct{ Layer, Rule string }
		}
	}
	decode := func(out string) result {
		t.Helper()
		var r result
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatalf("inspector output %q: %v", out, err)
		}
		return r
	}

	out, ok := run("--method", "tools/list")
	var names []string
	for _, tool := range decode(out).Tools {
		names = append(names, tool.Name)
		if tool.Description == "" || tool.InputSchema["type"] != "object" {
			t.Errorf("tool %s: no description or object schema", tool.Name)
		}
	}
	if !ok || strings.Join(names, " ") != "bash edit_file list_files read_file request_capability write_file" {
		t.Errorf("tools/list: %v\n%s", names, out)
	}

	out, ok = run("--method", "tools/call", "--tool-name", "bash", "--tool-arg", "command=echo via-inspector; id -u")
	if r := decode(out); !ok || r.IsError || len(r.Content) != 1 || !strings.Contains(r.Content[0].Text, "via-inspector") {
		t.Errorf("bash: %s", out)
	}
	out, ok = run("--method", "tools/call", "--tool-name", "bash", "--tool-arg", "command=unshare -U true")
	if r := decode(out); !ok || !r.IsError || len(r.StructuredContent.Denials) == 0 || r.StructuredContent.Denials[0].Layer != "seccomp" ||
		!strings.Contains(r.Content[0].Text, r.StructuredContent.Denials[0].Rule) {
		t.Errorf("refused bash: %s", out)
	}

	out, ok = run("--method", "tools/call", "--tool-name", "read_file", "--tool-arg", "path=hello.txt")
	if r := decode(out); !ok || r.IsError || r.Content[0].Text != "hello from the workspace\n" {
		t.Errorf("read_file: %s", out)
	}
	out, ok = run("--method", "tools/call", "--tool-name", "read_file", "--tool-arg", "path=/etc/shadow")
	if r := decode(out); !ok || !r.IsError || len(r.StructuredContent.Denials) == 0 || r.StructuredContent.Denials[0].Rule != "policy.workspace.beneath" {
		t.Errorf("read_file outside: %s", out)
	}

	// An unknown tool is a JSON-RPC error: the inspector fails.
	if out, ok := run("--method", "tools/call", "--tool-name", "no_such_tool"); ok {
		t.Errorf("unknown tool succeeded: %s", out)
	}
}
