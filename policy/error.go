package policy

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Error is every problem found in one policy, by Parse, Validate or Expand.
type Error struct {
	Source   string // file name or other label given to Parse; may be empty
	Problems []Problem
}

// Problem is one thing wrong with a policy.
type Problem struct {
	Line    int    // 1-based line in the source; 0 when unknown
	Field   string // YAML path, e.g. "filesystem.read[2].at"; empty for the whole document
	Message string // what is wrong, lowercase, no trailing period
}

// String formats the problem as "LINE: FIELD: MESSAGE", leaving out the
// parts that are unknown.
func (p Problem) String() string {
	var b strings.Builder
	if p.Line > 0 {
		fmt.Fprintf(&b, "%d: ", p.Line)
	}
	if p.Field != "" {
		b.WriteString(p.Field)
		b.WriteString(": ")
	}
	b.WriteString(p.Message)
	return b.String()
}

// Error returns one line per problem, "SOURCE:LINE: FIELD: MESSAGE"
// (LINE left out when unknown, SOURCE "policy" when empty).
func (e *Error) Error() string {
	src := e.Source
	if src == "" {
		src = "policy"
	}
	var b strings.Builder
	for i, p := range e.Problems {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(src)
		if p.Line > 0 {
			fmt.Fprintf(&b, ":%d", p.Line)
		}
		b.WriteString(": ")
		p.Line = 0
		b.WriteString(p.String())
	}
	return b.String()
}

func (e *Error) add(line int, field, msg string) {
	e.Problems = append(e.Problems, Problem{Line: line, Field: field, Message: msg})
}

// sort orders problems by line, keeping the order of problems on the same
// line; problems without a line come last.
func (e *Error) sort() {
	slices.SortStableFunc(e.Problems, func(a, b Problem) int {
		switch {
		case a.Line == b.Line:
			return 0
		case a.Line == 0:
			return 1
		case b.Line == 0:
			return -1
		}
		return a.Line - b.Line
	})
}

// orNil returns e when it holds problems, nil otherwise.
func (e *Error) orNil() error {
	if len(e.Problems) == 0 {
		return nil
	}
	e.sort()
	return e
}

// Errors produced by this package's UnmarshalYAML methods carry the node's
// column as well as its line, so Parse can name the exact field.
func nodeError(n *yaml.Node, format string, args ...any) error {
	return &yaml.TypeError{Errors: []string{
		fmt.Sprintf("line %d: column %d: ", n.Line, n.Column) + fmt.Sprintf(format, args...),
	}}
}

var (
	reYAMLLine     = regexp.MustCompile(`^(?:yaml: )?line (\d+): (?:column (\d+): )?(.*)$`)
	reNotFound     = regexp.MustCompile(`^field (.*) not found in type (\S+)$`)
	reDuplicate    = regexp.MustCompile(`^mapping key "(.*)" already defined at line (\d+)$`)
	reAlreadySet   = regexp.MustCompile(`^field (.*) already set in type \S+$`)
	reCannotDecode = regexp.MustCompile("^cannot unmarshal (!!\\w+)(?: `(.*)`)? into (.+)$")
)

// addYAML turns an error from yaml.v3 into problems, naming the field at
// the reported position when pos is known.
func (e *Error) addYAML(err error, pos *positions) {
	var msgs []string
	var te *yaml.TypeError
	if errors.As(err, &te) {
		msgs = te.Errors
	} else {
		msgs = []string{err.Error()}
	}
	for _, m := range msgs {
		line, col := 0, 0
		if sm := reYAMLLine.FindStringSubmatch(m); sm != nil {
			line, _ = strconv.Atoi(sm[1])
			col, _ = strconv.Atoi(sm[2])
			m = sm[3]
		} else {
			m = strings.TrimPrefix(m, "yaml: ")
		}
		field := ""
		if pos != nil {
			field = pos.field(line, col)
		}
		e.add(line, field, rewordYAML(m))
	}
}

// structTypes maps the Go type names yaml.v3 prints to their YAML keys.
var structTypes = map[string]reflect.Type{}

func init() {
	for _, t := range []reflect.Type{
		reflect.TypeFor[Policy](), reflect.TypeFor[Workspace](), reflect.TypeFor[Filesystem](),
		reflect.TypeFor[Network](), reflect.TypeFor[Env](), reflect.TypeFor[Limits](),
		reflect.TypeFor[Capabilities](),
	} {
		structTypes[t.String()] = t
	}
}

// rewordYAML rewrites yaml.v3's messages, which speak of Go types, in the
// policy's own terms.
func rewordYAML(m string) string {
	if sm := reNotFound.FindStringSubmatch(m); sm != nil {
		msg := fmt.Sprintf("unknown key %q", sm[1])
		if t, ok := structTypes[sm[2]]; ok {
			msg += "; valid keys: " + strings.Join(yamlKeys(t), ", ")
		}
		return msg
	}
	if sm := reDuplicate.FindStringSubmatch(m); sm != nil {
		return fmt.Sprintf("duplicate key %q (first at line %s)", sm[1], sm[2])
	}
	if sm := reAlreadySet.FindStringSubmatch(m); sm != nil {
		return fmt.Sprintf("duplicate key %q", sm[1])
	}
	if sm := reCannotDecode.FindStringSubmatch(m); sm != nil {
		got := tagName(sm[1])
		if sm[2] != "" {
			got += " " + strconv.Quote(sm[2])
		}
		return fmt.Sprintf("wrong type: want %s, got %s", goTypeName(sm[3]), got)
	}
	return m
}

func tagName(tag string) string {
	switch tag {
	case "!!str":
		return "string"
	case "!!int":
		return "integer"
	case "!!float":
		return "number"
	case "!!bool":
		return "boolean"
	case "!!seq":
		return "list"
	case "!!map":
		return "mapping"
	case "!!null":
		return "null"
	}
	return tag
}

func goTypeName(t string) string {
	switch {
	case t == "int" || t == "int64":
		return "an integer"
	case t == "float64":
		return "a number"
	case t == "bool":
		return "true or false"
	case t == "string":
		return "a string"
	case strings.HasPrefix(t, "[]"):
		return "a list"
	case strings.HasPrefix(t, "map["), strings.HasPrefix(t, "policy."):
		return "a mapping"
	}
	return t
}

// positions records where each field of a document was found.
type positions struct {
	byPath map[string]int    // field path -> line of its key or list item
	byLine map[int]string    // line -> outermost field starting on it
	byPos  map[[2]int]string // line, column -> field whose node starts there
}

func newPositions() *positions {
	return &positions{
		byPath: map[string]int{},
		byLine: map[int]string{},
		byPos:  map[[2]int]string{},
	}
}

// recordPos records only the node's exact position: used for mapping
// values, whose line belongs to their key.
func (ps *positions) recordPos(n *yaml.Node, path string) {
	if k := [2]int{n.Line, n.Column}; ps.byPos[k] == "" {
		ps.byPos[k] = path
	}
}

func (ps *positions) record(n *yaml.Node, path string) {
	if _, ok := ps.byPath[path]; !ok {
		ps.byPath[path] = n.Line
	}
	if _, ok := ps.byLine[n.Line]; !ok {
		ps.byLine[n.Line] = path
	}
	if k := [2]int{n.Line, n.Column}; ps.byPos[k] == "" {
		ps.byPos[k] = path
	}
}

// field names the field at a position reported in an error.
func (ps *positions) field(line, col int) string {
	if col > 0 {
		if f, ok := ps.byPos[[2]int{line, col}]; ok {
			return f
		}
	}
	return ps.byLine[line]
}

// walk records positions under n and rejects the YAML features a policy
// does not use: anchors, aliases, merge keys, explicit tags, complex keys.
func (ps *positions) walk(n *yaml.Node, path string, e *Error) {
	if !plainNode(n, path, e) {
		return
	}
	switch n.Kind {
	case yaml.MappingNode:
		seen := map[string]int{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if !plainNode(k, path, e) {
				continue
			}
			if k.Kind != yaml.ScalarNode {
				e.add(k.Line, path, "a key must be a plain string")
				continue
			}
			if k.ShortTag() == "!!merge" {
				e.add(k.Line, path, "merge keys (<<) are not supported in a policy")
				continue
			}
			child := k.Value
			if path != "" {
				child = path + "." + k.Value
			}
			if first, dup := seen[k.Value]; dup {
				e.add(k.Line, child, fmt.Sprintf("duplicate key %q (first at line %d)", k.Value, first))
				continue
			}
			seen[k.Value] = k.Line
			ps.record(k, child)
			ps.recordPos(v, child)
			ps.walk(v, child, e)
		}
	case yaml.SequenceNode:
		for i, it := range n.Content {
			child := fmt.Sprintf("%s[%d]", path, i)
			ps.record(it, child)
			ps.walk(it, child, e)
		}
	}
}

func plainNode(n *yaml.Node, path string, e *Error) bool {
	switch {
	case n.Kind == yaml.AliasNode:
		e.add(n.Line, path, "YAML aliases (*name) are not supported in a policy")
		return false
	case n.Anchor != "":
		e.add(n.Line, path, "YAML anchors (&name) are not supported in a policy")
		return false
	case n.Style&yaml.TaggedStyle != 0:
		e.add(n.Line, path, fmt.Sprintf("explicit YAML tags (%s) are not supported in a policy", n.Tag))
		return false
	}
	return true
}
