package mcpserver

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/google/jsonschema-go/jsonschema"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

type readArgs struct {
	Path      string `json:"path" jsonschema:"Path relative to the workspace, or an absolute path inside it."`
	StartLine int    `json:"start_line,omitempty" jsonschema:"First line to return, counting from 1. Default: 1."`
	EndLine   int    `json:"end_line,omitempty" jsonschema:"Last line to return (inclusive). Default: the end of the file."`
}

const readDescription = `Read a text file in the sandboxed workspace, optionally a range of lines.

The text comes back exactly as it is in the file (no line numbers added), so it can be used as old_string for edit_file. A file longer than the output cap is cut; read the rest with start_line and end_line. Paths outside the workspace, and files the session's policy hides, are refused with an explanation.`

func (t *tools) addReadFile(s *mcp.Server) {
	addTool(s, &mcp.Tool{
		Name: "read_file", Title: "Read a file (sandboxed)", Description: readDescription,
		Annotations: &mcp.ToolAnnotations{Title: "Read a file (sandboxed)", ReadOnlyHint: true, OpenWorldHint: boolPtr(false)},
	}, func(s *jsonschema.Schema) {
		s.Properties["path"].MinLength = intPtr(1)
		s.Properties["start_line"].Minimum = floatPtr(1)
		s.Properties["end_line"].Minimum = floatPtr(1)
	}, t.readFile)
}

func (t *tools) readFile(ctx context.Context, req *mcp.CallToolRequest, in readArgs) (*mcp.CallToolResult, error) {
	if in.EndLine > 0 && in.StartLine > in.EndLine {
		return nil, badArgs("start_line %d is after end_line %d", in.StartLine, in.EndLine)
	}
	sess, failed := t.session(ctx, req)
	if failed != nil {
		return failed, nil
	}
	data, truncated, err := sess.ReadFile(ctx, in.Path)
	if err != nil {
		return callError(err)
	}
	structured := map[string]any{"path": in.Path, "bytes": len(data)}
	if !utf8.Valid(data) {
		structured["binary"] = true
		return result(true, fmt.Sprintf("%s is not UTF-8 text (%d bytes); inspect it with bash (for example xxd or file).", in.Path, len(data)), structured), nil
	}
	lines := splitLines(data)
	first, last := max(in.StartLine, 1), len(lines)
	if in.EndLine > 0 {
		last = min(in.EndLine, len(lines))
	}
	var notes []string
	var body []byte
	if first <= last {
		for i, l := range lines[first-1 : last] {
			if int64(len(body)+len(l)) > t.opts.MaxOutput && i > 0 {
				last = first + i - 1
				notes = append(notes, fmt.Sprintf("Lines %d-%d of %d shown: the rest is past the output cap; read on with start_line %d.", first, last, len(lines), last+1))
				break
			}
			body = append(body, l...)
		}
	} else if len(lines) > 0 || first > 1 {
		notes = append(notes, fmt.Sprintf("%s has %d lines; start_line %d is past its end.", in.Path, len(lines), first))
	}
	if int64(len(body)) > t.opts.MaxOutput { // one enormous line
		body = bytes.ToValidUTF8(body[:t.opts.MaxOutput], nil)
		notes = append(notes, fmt.Sprintf("Line %d is longer than the output cap and was cut; use bash (for example cut or fold) to read it.", first))
	}
	if truncated {
		notes = append(notes, fmt.Sprintf("The file is larger than the session's read limit: only its first %d bytes could be read; use bash to read further.", len(data)))
	}
	structured["content"] = string(body)
	structured["start_line"], structured["end_line"], structured["total_lines"] = first, max(last, first-1), len(lines)
	structured["truncated"] = len(notes) > 0
	res := result(false, string(body), structured)
	if len(notes) > 0 {
		// Apart from the text, so the text stays exactly the file's.
		res.Content = append(res.Content, &mcp.TextContent{Text: "[cordon: " + strings.Join(notes, " ") + "]"})
	}
	return res, nil
}

// splitLines splits after each newline, keeping it.
func splitLines(data []byte) [][]byte {
	var lines [][]byte
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			lines = append(lines, data)
			break
		}
		lines = append(lines, data[:i+1])
		data = data[i+1:]
	}
	return lines
}

type writeArgs struct {
	Path    string `json:"path" jsonschema:"Path relative to the workspace, or an absolute path inside it."`
	Content string `json:"content" jsonschema:"The whole new content of the file."`
}

const writeDescription = `Create a file in the sandboxed workspace, or replace its whole content; missing parent directories are created. To change part of a file, use edit_file. Paths outside the workspace are refused with an explanation.`

func (t *tools) addWriteFile(s *mcp.Server) {
	addTool(s, &mcp.Tool{
		Name: "write_file", Title: "Write a file (sandboxed)", Description: writeDescription,
		Annotations: &mcp.ToolAnnotations{Title: "Write a file (sandboxed)", DestructiveHint: boolPtr(true), IdempotentHint: true, OpenWorldHint: boolPtr(false)},
	}, func(s *jsonschema.Schema) { s.Properties["path"].MinLength = intPtr(1) }, t.writeFile)
}

func (t *tools) writeFile(ctx context.Context, req *mcp.CallToolRequest, in writeArgs) (*mcp.CallToolResult, error) {
	sess, failed := t.session(ctx, req)
	if failed != nil {
		return failed, nil
	}
	if err := sess.WriteFile(ctx, in.Path, []byte(in.Content)); err != nil {
		return callError(err)
	}
	return result(false, fmt.Sprintf("wrote %d bytes to %s", len(in.Content), in.Path),
		map[string]any{"path": in.Path, "bytes": len(in.Content)}), nil
}

type editArgs struct {
	Path       string `json:"path" jsonschema:"Path relative to the workspace, or an absolute path inside it."`
	OldString  string `json:"old_string" jsonschema:"The exact text to replace, including whitespace and indentation. It must occur exactly once unless replace_all is set."`
	NewString  string `json:"new_string" jsonschema:"The text to put in its place."`
	ReplaceAll bool   `json:"replace_all,omitempty" jsonschema:"Replace every occurrence of old_string instead of requiring exactly one."`
}

const editDescription = `Edit a file in the sandboxed workspace by exact string replacement.

old_string must match the file's text exactly, including whitespace and indentation, and must occur exactly once: the edit fails without changing the file when it is not found, or when it occurs more than once (add surrounding lines to make it unique, or set replace_all to replace every occurrence). Read the file first with read_file to copy the text exactly.`

func (t *tools) addEditFile(s *mcp.Server) {
	addTool(s, &mcp.Tool{
		Name: "edit_file", Title: "Edit a file (sandboxed)", Description: editDescription,
		Annotations: &mcp.ToolAnnotations{Title: "Edit a file (sandboxed)", DestructiveHint: boolPtr(true), OpenWorldHint: boolPtr(false)},
	}, func(s *jsonschema.Schema) {
		s.Properties["path"].MinLength = intPtr(1)
		s.Properties["old_string"].MinLength = intPtr(1)
	}, t.editFile)
}

func (t *tools) editFile(ctx context.Context, req *mcp.CallToolRequest, in editArgs) (*mcp.CallToolResult, error) {
	if in.OldString == in.NewString {
		return nil, badArgs("old_string and new_string are the same: there is nothing to change")
	}
	sess, failed := t.session(ctx, req)
	if failed != nil {
		return failed, nil
	}
	data, truncated, err := sess.ReadFile(ctx, in.Path)
	if err != nil {
		return callError(err)
	}
	structured := map[string]any{"path": in.Path, "replacements": 0}
	if truncated {
		return result(true, fmt.Sprintf("%s is larger than the session's read limit, so edit_file cannot rewrite it; edit it with bash (for example sed).", in.Path), structured), nil
	}
	content := string(data)
	switch n := strings.Count(content, in.OldString); {
	case n == 0:
		return result(true, fmt.Sprintf("old_string was not found in %s; the file is unchanged. It must match exactly, including whitespace and indentation: read the file again and copy the text.", in.Path), structured), nil
	case n > 1 && !in.ReplaceAll:
		structured["occurrences"] = n
		return result(true, fmt.Sprintf("old_string occurs %d times in %s; the file is unchanged. Include more surrounding text to make it unique, or set replace_all to replace every occurrence.", n, in.Path), structured), nil
	default:
		if in.ReplaceAll {
			content = strings.ReplaceAll(content, in.OldString, in.NewString)
		} else {
			content = strings.Replace(content, in.OldString, in.NewString, 1)
		}
		if err := sess.WriteFile(ctx, in.Path, []byte(content)); err != nil {
			return callError(err)
		}
		structured["replacements"] = n
		return result(false, fmt.Sprintf("replaced %d occurrence%s in %s", n, plural(n), in.Path), structured), nil
	}
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}
