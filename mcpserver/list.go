package mcpserver

import (
	"context"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/google/jsonschema-go/jsonschema"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/cordon-sandbox/cordon/events"
	"github.com/cordon-sandbox/cordon/sandbox"
)

type listArgs struct {
	Path    string `json:"path,omitempty" jsonschema:"Directory to list, relative to the workspace (or an absolute path inside it). Default: the workspace."`
	Pattern string `json:"pattern,omitempty" jsonschema:"Glob to find files beneath path, e.g. **/*.go or cmd/*/main.go. Without it, the directory's own entries are listed."`
}

const listDescription = `List files in the sandboxed workspace.

Without pattern: the entries of one directory (default: the workspace), directories marked with a trailing slash. With pattern: every file and directory beneath path whose path relative to it matches the glob, one per line. In the glob, * and ? match within one path element, [abc] matches a character class, and ** matches any number of directories (so **/*.go finds Go files at every depth, *.go only at the top). As in a shell, wildcards do not match names that start with a dot unless the pattern element does (.github/**). Symbolic links are listed, not followed. Results are capped; narrow the path or the pattern when they are cut.`

// Bounds of one list_files call.
const (
	maxListResults = 2000
	maxListDirs    = 5000
	maxPattern     = 1024
)

func (t *tools) addListFiles(s *mcp.Server) {
	addTool(s, &mcp.Tool{
		Name: "list_files", Title: "List files (sandboxed)", Description: listDescription,
		Annotations: &mcp.ToolAnnotations{Title: "List files (sandboxed)", ReadOnlyHint: true, OpenWorldHint: boolPtr(false)},
	}, func(s *jsonschema.Schema) { s.Properties["pattern"].MaxLength = intPtr(maxPattern) }, t.listFiles)
}

func (t *tools) listFiles(ctx context.Context, req *mcp.CallToolRequest, in listArgs) (*mcp.CallToolResult, error) {
	root := in.Path
	if root == "" {
		root = "."
	}
	var pat []string
	if in.Pattern != "" {
		var err error
		if pat, err = parseGlob(in.Pattern); err != nil {
			return nil, badArgs("pattern %q: %v", in.Pattern, err)
		}
	}
	sess, failed := t.session(ctx, req)
	if failed != nil {
		return failed, nil
	}
	entries, err := sess.ListDir(ctx, root)
	if err != nil {
		return callError(err)
	}
	structured := map[string]any{"path": root}
	if pat == nil {
		var files []string
		for _, e := range entries {
			files = append(files, nameOf(path.Join(root, e.Name), e))
		}
		slices.Sort(files)
		structured["files"] = files
		return listResult(files, false, nil, structured), nil
	}
	structured["pattern"] = in.Pattern
	w := &walk{sess: sess, root: root, pat: pat}
	w.dir(nil, entries)
	for i := 0; i < len(w.queue) && ctx.Err() == nil; i++ {
		if w.listed >= maxListDirs || len(w.files) >= maxListResults {
			w.cut = true
			break
		}
		rel := w.queue[i]
		w.listed++
		entries, err := sess.ListDir(ctx, path.Join(root, path.Join(rel...)))
		if err != nil {
			w.failed++
			if se, ok := errors.AsType[*sandbox.Error](err); ok {
				w.denials = append(w.denials, se.Denials...)
			}
			continue
		}
		w.dir(rel, entries)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var notes []string
	if len(w.files) > maxListResults {
		w.files, w.cut = w.files[:maxListResults], true
	}
	if w.cut {
		notes = append(notes, fmt.Sprintf("The listing was cut (at most %d results and %d directories per call); narrow the path or the pattern.", maxListResults, maxListDirs))
	}
	if w.failed > 0 {
		notes = append(notes, fmt.Sprintf("%d of the directories beneath could not be listed.", w.failed))
	}
	slices.Sort(w.files)
	structured["files"] = w.files
	structured["truncated"] = w.cut
	denials := events.Fold(w.denials)
	if len(denials) > 0 {
		structured["denials"] = denials
		notes = append(notes, events.Explain(denials))
	}
	return listResult(w.files, w.cut, notes, structured), nil
}

func listResult(files []string, cut bool, notes []string, structured map[string]any) *mcp.CallToolResult {
	text := strings.Join(files, "\n")
	if len(files) == 0 {
		text = "(no matches)"
		if structured["pattern"] == nil {
			text = "(empty directory)"
		}
	}
	if len(notes) > 0 {
		text += "\n[cordon: " + strings.Join(notes, " ") + "]"
	}
	return result(false, text, structured)
}

// nameOf is how a listing shows an entry: directories end in a slash.
func nameOf(p string, e sandbox.FileInfo) string {
	if e.Type == "dir" {
		return p + "/"
	}
	return p
}

// walk is a breadth-first search for a glob's matches.
type walk struct {
	sess    Session
	root    string
	pat     []string
	queue   [][]string // directories to list, relative to root
	files   []string
	listed  int
	failed  int
	cut     bool
	denials []*events.Event
}

// dir takes in the entries of the directory rel: the matches, and the
// subdirectories beneath which a match may lie.
func (w *walk) dir(rel []string, entries []sandbox.FileInfo) {
	for _, e := range entries {
		child := append(slices.Clip(rel), e.Name)
		if globMatch(w.pat, child, false) {
			w.files = append(w.files, nameOf(path.Join(w.root, path.Join(child...)), e))
		}
		if e.Type == "dir" && globMatch(w.pat, child, true) {
			w.queue = append(w.queue, child)
		}
	}
}

// parseGlob splits a glob into path elements and checks each.
func parseGlob(p string) ([]string, error) {
	if strings.HasPrefix(p, "/") {
		return nil, errors.New("the pattern is matched beneath path, so it cannot be absolute; set path instead")
	}
	var out []string
	for _, el := range strings.Split(p, "/") {
		switch {
		case el == "" || el == ".":
			continue
		case el == "..":
			return nil, errors.New(`".." cannot appear in a pattern; set path instead`)
		case el == "**":
			if len(out) > 0 && out[len(out)-1] == "**" {
				continue
			}
		case strings.Contains(el, "**"):
			return nil, fmt.Errorf("%q: ** must be a whole path element, as in **/*.go", el)
		default:
			if _, err := path.Match(el, ""); err != nil {
				return nil, fmt.Errorf("%q: %v", el, err)
			}
		}
		out = append(out, el)
	}
	if len(out) == 0 {
		return nil, errors.New("the pattern is empty")
	}
	return out, nil
}

// globMatch reports whether the path elements name match pat, or, with
// prefix, whether something beneath name could. It is a dynamic program
// over (pattern element, name element), so ** costs no backtracking.
func globMatch(pat, name []string, prefix bool) bool {
	// m[j] is whether pat[i:] matches name[j:], for the current i.
	next := make([]bool, len(name)+1)
	m := make([]bool, len(name)+1)
	// i == len(pat): only an exhausted name matches; nothing lies
	// beneath a full match.
	next[len(name)] = !prefix
	for i := len(pat) - 1; i >= 0; i-- {
		if prefix {
			m[len(name)] = true // pattern left over: something beneath may match
		} else {
			m[len(name)] = pat[i] == "**" && next[len(name)]
		}
		for j := len(name) - 1; j >= 0; j-- {
			if pat[i] == "**" {
				m[j] = next[j] || (!hidden(name[j]) && m[j+1])
			} else {
				m[j] = elementMatch(pat[i], name[j]) && next[j+1]
			}
		}
		m, next = next, m
	}
	return next[0]
}

func elementMatch(pat, name string) bool {
	if hidden(name) && !strings.HasPrefix(pat, ".") {
		return false
	}
	ok, _ := path.Match(pat, name)
	return ok
}

func hidden(name string) bool { return strings.HasPrefix(name, ".") }
