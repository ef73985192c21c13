// Package policy defines cordon's sandbox policy: what a session may see,
// write, reach and spend, and which capability grants are automatic, asked
// for or refused.
//
// A Policy is pure data. It is decoded strictly from YAML (or JSON, which
// is a subset of YAML), checked by Validate, and can be marshalled back,
// compared and tested without root. Nothing in this package makes a system
// call or touches the filesystem: host facts (the home directory, the
// environment) are handed in by the caller, as in Expand. Resolving a policy
// against the host (which paths exist) and applying it to the kernel happen
// in later layers.
package policy

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"slices"
	"strings"
	"sync"

	"gopkg.in/yaml.v3"
)

// Version is the only policy format version this package reads.
const Version = 1

// Policy is a complete sandbox policy. The zero value is not valid; start
// from Default or Parse.
type Policy struct {
	Version      int          `yaml:"version" json:"version"` // must be 1
	Workspace    Workspace    `yaml:"workspace" json:"workspace"`
	Filesystem   Filesystem   `yaml:"filesystem" json:"filesystem"`
	Network      Network      `yaml:"network" json:"network"`
	Env          Env          `yaml:"env" json:"env"`
	Limits       Limits       `yaml:"limits" json:"limits"`
	Capabilities Capabilities `yaml:"capabilities" json:"capabilities"`

	// source names where the policy came from (a file name), for errors.
	source string
	// lines maps a field path ("filesystem.read[2].at") to the line it was
	// decoded from. Empty for a policy built in Go.
	lines map[string]int
	// expanded is set on the result of Expand: Mount.Path is then a literal
	// host path, with no "~/" or ${VAR} left to interpret.
	expanded bool
}

// Workspace says how the session sees the workspace directory.
type Workspace struct {
	// Access is AccessWrite (the default when empty) or AccessRead.
	Access Access `yaml:"access" json:"access"`
	// Protect are paths in the workspace, relative to it, that a session
	// sees read-only although the workspace is writable: files that make
	// the host run code later (git hooks and configuration, editor tasks,
	// agent settings). In each entry one path element may use the
	// wildcards "*" (any run of characters) and "?" (one character);
	// every other character matches itself, and "*" matches a leading "."
	// too. Only what exists when the session starts can be protected:
	// see docs/security.md.
	Protect []string `yaml:"protect" json:"protect"`
}

// Filesystem lists host paths made visible in the session, besides the
// workspace, the private /tmp and HOME tmpfs, /proc and a minimal /dev.
type Filesystem struct {
	// Read are host paths visible read-only (and executable).
	Read []Mount `yaml:"read" json:"read"`
	// Write are host paths visible read-write outside the workspace.
	Write []Mount `yaml:"write" json:"write"`
	// Hide are absolute paths inside the view that are replaced by an empty
	// file or directory (credentials under an otherwise visible directory).
	// An entry that does not exist in the view is not an error.
	Hide []string `yaml:"hide" json:"hide"`
}

// Mount is a host path made visible in the session. In YAML it is either a
// plain string ("/usr") or a mapping {path, at, optional}.
type Mount struct {
	// Path is the host path: absolute, or "~/..." for the invoking user's
	// home. It may contain ${VAR} from the host environment, and "$$" for a
	// literal "$". "~/" and ${VAR} are expanded only by Policy.Expand.
	Path string `yaml:"path" json:"path"`
	// At is the path inside the session; empty means the same as Path
	// (after expansion). Absolute and clean.
	At string `yaml:"at,omitempty" json:"at,omitempty"`
	// Optional makes a missing host path (or an unset ${VAR}) skip the
	// mount. A missing path that is not optional is an error when the policy
	// is resolved against the host.
	Optional bool `yaml:"optional,omitempty" json:"optional,omitempty"`
}

// Target returns where the mount appears in the session: At, or Path when
// At is empty. Meaningful after Expand.
func (m Mount) Target() string {
	if m.At != "" {
		return m.At
	}
	return m.Path
}

// Network says which hosts the egress proxy lets the session reach.
type Network struct {
	// Allow are host names ("github.com"), suffix patterns
	// ("*.githubusercontent.com"), or IP literals, each with an optional
	// ":port". Empty means no network.
	Allow []string `yaml:"allow" json:"allow"`
	// AllowPrivate are address prefixes (CIDR, or a single IP) that
	// allowlisted hosts may resolve or be dialled at even though they are
	// loopback, private, link-local or otherwise not public. The proxy
	// refuses every such address that is not covered here; a cloud
	// metadata address must be listed as that single address.
	AllowPrivate []string `yaml:"allow_private" json:"allow_private"`
}

// Env is the session environment. Everything else is scrubbed.
type Env struct {
	// Pass are variable names copied from the caller's environment when set.
	Pass []string `yaml:"pass" json:"pass"`
	// Set are fixed values; they override Pass.
	Set map[string]string `yaml:"set" json:"set"`
}

// Limits are the session's resource limits. A zero value means "no limit
// from the policy" for Memory, Pids, CPU, Timeout, Output, DiskFree and
// DiskFreeInodes, and "the runtime's built-in size" for Tmp and Home.
type Limits struct {
	Memory  ByteSize `yaml:"memory" json:"memory"`   // memory of the whole session
	Pids    int      `yaml:"pids" json:"pids"`       // processes and threads in the session
	CPU     float64  `yaml:"cpu" json:"cpu"`         // cores, e.g. 1.5; 0 = unlimited
	Timeout Duration `yaml:"timeout" json:"timeout"` // default per-call wall timeout
	Output  ByteSize `yaml:"output" json:"output"`   // per-call cap on stdout+stderr bytes returned
	Tmp     ByteSize `yaml:"tmp" json:"tmp"`         // size of the session's /tmp tmpfs
	Home    ByteSize `yaml:"home" json:"home"`       // size of the session's $HOME tmpfs
	// DiskFree is a floor under the free space of every host filesystem
	// the session can write (the workspace's, and those of
	// filesystem.write paths and fs.write grants): a call may not bring
	// it below this. The session's own /tmp and $HOME are not host
	// filesystems; their size is Tmp and Home.
	DiskFree ByteSize `yaml:"disk_free" json:"disk_free"`
	// DiskFreeInodes is the same floor for free inodes (files).
	DiskFreeInodes int64 `yaml:"disk_free_inodes" json:"disk_free_inodes"`
}

// Capabilities decide capability requests. Each entry is a pattern over
// capability names "layer.verb:target"; see Decide for the syntax.
type Capabilities struct {
	Auto  []string `yaml:"auto" json:"auto"`   // granted without asking
	Ask   []string `yaml:"ask" json:"ask"`     // a person decides
	Never []string `yaml:"never" json:"never"` // refused; wins over auto and ask
}

//go:embed default.yaml
var defaultYAML []byte

// DefaultSource is the Source of errors about the embedded default policy.
const DefaultSource = "default.yaml"

var defaultPolicy = sync.OnceValues(func() (*Policy, error) {
	return Parse(defaultYAML, DefaultSource)
})

// Default returns the embedded default policy: enough for ordinary
// development (git, go, python3, node, make, shell utilities) with no
// network and no grants. Each call returns a fresh copy.
func Default() *Policy {
	p, err := defaultPolicy()
	if err != nil {
		// The default is embedded and tested; this is a build defect.
		panic(fmt.Sprintf("policy: embedded default is invalid: %v", err))
	}
	return p.Clone()
}

// DefaultYAML returns the text of the embedded default policy, comments
// included.
func DefaultYAML() []byte {
	return bytes.Clone(defaultYAML)
}

// Expanded reports whether p is the result of Expand, so that its mount
// paths are literal host paths.
func (p *Policy) Expanded() bool { return p.expanded }

// Source returns the name the policy was parsed from ("" when built in Go).
func (p *Policy) Source() string { return p.source }

// Line returns the line a field path (as in Problem.Field) was decoded
// from, or of its closest enclosing field; 0 when unknown.
func (p *Policy) Line(field string) int {
	for f := field; f != ""; f = parentField(f) {
		if l, ok := p.lines[f]; ok {
			return l
		}
	}
	return 0
}

// parentField strips the last component of a field path:
// "a.b[2].c" -> "a.b[2]" -> "a.b" -> "a" -> "".
func parentField(f string) string {
	i := strings.LastIndexAny(f, ".[")
	if i < 0 {
		return ""
	}
	return f[:i]
}

// Parse decodes a policy strictly. An unknown key, a duplicate key, a value
// of the wrong type or shape, a version other than 1, an empty document,
// more than one document, and YAML anchors, aliases, merge keys or
// explicit tags are errors. The error is an *Error naming source and line
// of every problem found. Parse does not run Validate.
func Parse(data []byte, source string) (*Policy, error) {
	perr := &Error{Source: source}

	// Pass 1: syntax, document count, and the positions of every field.
	if len(bytes.TrimSpace(data)) == 0 {
		perr.add(0, "", "policy is empty")
		return nil, perr
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var root yaml.Node
	if err := dec.Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			perr.add(0, "", "policy is empty")
			return nil, perr
		}
		perr.addYAML(err, nil)
		return nil, perr
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case errors.Is(err, io.EOF):
	case err != nil:
		perr.addYAML(err, nil)
		return nil, perr
	default:
		perr.add(extra.Line, "", "more than one YAML document; a policy is a single document")
		return nil, perr
	}
	doc := &root
	if doc.Kind == yaml.DocumentNode && len(doc.Content) == 1 {
		doc = doc.Content[0]
	}
	if doc.Kind == yaml.DocumentNode || doc.Kind == 0 || (doc.Kind == yaml.ScalarNode && doc.ShortTag() == "!!null") {
		perr.add(0, "", "policy is empty")
		return nil, perr
	}
	if doc.Kind != yaml.MappingNode {
		perr.add(doc.Line, "", "a policy is a mapping with the keys "+strings.Join(yamlKeys(reflect.TypeFor[Policy]()), ", "))
		return nil, perr
	}
	pos := newPositions()
	pos.walk(doc, "", perr)
	if len(perr.Problems) > 0 {
		perr.sort()
		return nil, perr
	}

	// Pass 2: strict decode into the struct.
	p := &Policy{source: source, lines: pos.byPath}
	sdec := yaml.NewDecoder(bytes.NewReader(data))
	sdec.KnownFields(true)
	if err := sdec.Decode(p); err != nil {
		perr.addYAML(err, pos)
	}

	// Values that decode but can never be right, or would not survive a
	// round trip, are rejected here rather than in Validate.
	switch {
	case p.Version == 0 && p.lines["version"] == 0:
		perr.add(0, "version", fmt.Sprintf("missing; this cordon reads version %d", Version))
	case p.Version != Version:
		perr.add(p.Line("version"), "version", fmt.Sprintf("unsupported version %d; this cordon reads version %d", p.Version, Version))
	}
	if math.IsNaN(p.Limits.CPU) || math.IsInf(p.Limits.CPU, 0) {
		perr.add(p.Line("limits.cpu"), "limits.cpu", "must be a finite number of cores")
	}
	if len(perr.Problems) > 0 {
		perr.sort()
		return nil, perr
	}
	return p, nil
}

// Load parses and validates a policy: Parse followed by Validate.
func Load(data []byte, source string) (*Policy, error) {
	p, err := Parse(data, source)
	if err != nil {
		return nil, err
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return p, nil
}

// Marshal encodes the policy as YAML (2-space indent, no comments) that
// Parse reads back to an Equal policy.
//
// For an expanded policy (see Expand) each "$" in a mount path is written
// as "$$", so the text still means the same literal host path.
func (p *Policy) Marshal() ([]byte, error) {
	out := p
	if p.expanded {
		out = p.Clone()
		for _, list := range [][]Mount{out.Filesystem.Read, out.Filesystem.Write} {
			for i := range list {
				list[i].Path = strings.ReplaceAll(list[i].Path, "$", "$$")
			}
		}
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(out); err != nil {
		return nil, fmt.Errorf("encoding policy: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("encoding policy: %w", err)
	}
	return buf.Bytes(), nil
}

// Clone returns a deep copy, source positions included.
func (p *Policy) Clone() *Policy {
	if p == nil {
		return nil
	}
	q := *p
	q.Workspace.Protect = slices.Clone(p.Workspace.Protect)
	q.Filesystem.Read = slices.Clone(p.Filesystem.Read)
	q.Filesystem.Write = slices.Clone(p.Filesystem.Write)
	q.Filesystem.Hide = slices.Clone(p.Filesystem.Hide)
	q.Network.Allow = slices.Clone(p.Network.Allow)
	q.Network.AllowPrivate = slices.Clone(p.Network.AllowPrivate)
	q.Env.Pass = slices.Clone(p.Env.Pass)
	if p.Env.Set != nil {
		q.Env.Set = make(map[string]string, len(p.Env.Set))
		for k, v := range p.Env.Set {
			q.Env.Set[k] = v
		}
	}
	q.Capabilities = p.Capabilities.clone()
	if p.lines != nil {
		q.lines = make(map[string]int, len(p.lines))
		for k, v := range p.lines {
			q.lines[k] = v
		}
	}
	return &q
}

func (c Capabilities) clone() Capabilities {
	return Capabilities{
		Auto:  slices.Clone(c.Auto),
		Ask:   slices.Clone(c.Ask),
		Never: slices.Clone(c.Never),
	}
}

// Equal reports whether two policies say the same thing. Source names and
// line positions are ignored, and an empty list or map equals a missing
// one. Order in lists matters.
func (p *Policy) Equal(q *Policy) bool {
	if p == nil || q == nil {
		return p == q
	}
	return reflect.DeepEqual(p.canonical(), q.canonical())
}

// canonical returns a copy without positions and with empty collections
// set to nil, for comparison.
func (p *Policy) canonical() *Policy {
	c := p.Clone()
	c.source, c.lines, c.expanded = "", nil, false
	nilIfEmpty(&c.Workspace.Protect)
	nilIfEmpty(&c.Filesystem.Read)
	nilIfEmpty(&c.Filesystem.Write)
	nilIfEmpty(&c.Filesystem.Hide)
	nilIfEmpty(&c.Network.Allow)
	nilIfEmpty(&c.Network.AllowPrivate)
	nilIfEmpty(&c.Env.Pass)
	if len(c.Env.Set) == 0 {
		c.Env.Set = nil
	}
	nilIfEmpty(&c.Capabilities.Auto)
	nilIfEmpty(&c.Capabilities.Ask)
	nilIfEmpty(&c.Capabilities.Never)
	return c
}

func nilIfEmpty[T any](s *[]T) {
	if len(*s) == 0 {
		*s = nil
	}
}

// yamlKeys lists the YAML keys of a struct type, in field order.
func yamlKeys(t reflect.Type) []string {
	var keys []string
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "" || name == "-" {
			continue
		}
		keys = append(keys, name)
	}
	return keys
}
