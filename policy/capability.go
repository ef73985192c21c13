package policy

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Decision is what policy says about a capability request.
type Decision string

const (
	DecisionAuto  Decision = "auto"  // grant without asking
	DecisionAsk   Decision = "ask"   // wait for a person
	DecisionNever Decision = "never" // refuse
)

// Layers are the capability layers a name or pattern may use.
var Layers = []string{"net", "fs", "proc", "limit"}

// Longest capability name or pattern Decide and the checks accept.
const maxCapabilityLen = 4096

// capName is a capability name or pattern split into its parts.
type capName struct {
	layer, verb string
	target      string
	hasTarget   bool
}

func splitCapability(s string) (capName, error) {
	if len(s) > maxCapabilityLen {
		return capName{}, fmt.Errorf("longer than %d bytes", maxCapabilityLen)
	}
	name, target, hasTarget := strings.Cut(s, ":")
	layer, verb, ok := strings.Cut(name, ".")
	if !ok || !slices.Contains(Layers, layer) {
		return capName{}, fmt.Errorf("%q does not start with a layer (%s) and a \".\"", s, strings.Join(Layers, ", "))
	}
	if hasTarget && target == "" {
		return capName{}, fmt.Errorf("%q has an empty target after \":\"", s)
	}
	for _, c := range []byte(target) {
		if c < 0x20 || c == 0x7f {
			return capName{}, fmt.Errorf("%q has a control character in its target", s)
		}
	}
	return capName{layer: layer, verb: verb, target: target, hasTarget: hasTarget}, nil
}

// CheckCapability checks a capability name as requested at run time:
// "layer.verb" or "layer.verb:target", layer one of Layers, verb of
// [a-z0-9_-], target without control characters; an fs target must be an
// absolute clean path.
func CheckCapability(name string) error {
	c, err := splitCapability(name)
	if err != nil {
		return fmt.Errorf("invalid capability: %w", err)
	}
	if !validVerb(c.verb, false) {
		return fmt.Errorf("invalid capability %q: the verb must be of [a-z0-9_-]", name)
	}
	if c.layer == "fs" && c.hasTarget && checkViewPath(c.target) != "" {
		return fmt.Errorf("invalid capability %q: an fs target must be an absolute clean path", name)
	}
	return nil
}

// CheckPattern checks a capability pattern as written in a policy:
// "layer.verb" or "layer.verb:target" where layer is literal (one of
// Layers) and verb and target may use the globs described on Decide. An fs
// target pattern must be "**" or start with "/", and contain no empty,
// "." or ".." path element, since it could never match a clean path.
func CheckPattern(pattern string) error {
	c, err := splitCapability(pattern)
	if err != nil {
		return fmt.Errorf("invalid capability pattern: %w", err)
	}
	if !validVerb(c.verb, true) {
		return fmt.Errorf("invalid capability pattern %q: the verb must be of [a-z0-9_-] and the globs * and ?", pattern)
	}
	if c.layer == "fs" && c.hasTarget && c.target != "**" {
		if !strings.HasPrefix(c.target, "/") {
			return fmt.Errorf("invalid capability pattern %q: an fs target is an absolute path; use \"**\" or leave out \":target\" for any path", pattern)
		}
		if c.target != "/" {
			for _, el := range strings.Split(c.target[1:], "/") {
				if el == "" || el == "." || el == ".." {
					return fmt.Errorf("invalid capability pattern %q: an fs target has no empty, \".\" or \"..\" path element", pattern)
				}
			}
		}
	}
	return nil
}

func validVerb(v string, globs bool) bool {
	if v == "" {
		return false
	}
	for _, c := range []byte(v) {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-' || globs && (c == '*' || c == '?')) {
			return false
		}
	}
	return true
}

var errBadPattern = errors.New("invalid pattern")

// Capability is a capability name split into its parts:
// "fs.write:/opt/x" is {Layer: "fs", Verb: "write", Target: "/opt/x"}.
// Target is empty for a name without ":target" ("proc.ptrace").
type Capability struct {
	Layer, Verb, Target string
}

// ParseCapability checks a capability name as CheckCapability does and
// splits it into its parts.
func ParseCapability(name string) (Capability, error) {
	if err := CheckCapability(name); err != nil {
		return Capability{}, err
	}
	c, _ := splitCapability(name)
	return Capability{Layer: c.layer, Verb: c.verb, Target: c.target}, nil
}

// String returns the capability name "layer.verb" or "layer.verb:target".
func (c Capability) String() string {
	if c.Target == "" {
		return c.Layer + "." + c.Verb
	}
	return c.Layer + "." + c.Verb + ":" + c.Target
}

// Decide says what policy does with a capability request.
//
// Names are "layer.verb" or "layer.verb:target". A pattern is the same
// with globs: in the verb and in the target, "*" matches any run of
// characters except "/", "**" matches any run including "/", and "?"
// matches one character except "/". All other characters, ":" and "["
// included, match themselves. The layer is literal. A pattern without a
// ":target" matches every target of its verbs (and the name without a
// target); a pattern with a target matches only names with a matching
// target. So "fs.read" and "fs.read:**" both match "fs.read:/opt/data",
// "fs.*:/home/*/.ssh/**" matches "fs.write:/home/ann/.ssh/id_ed25519" but
// not "fs.write:/home/ann/.ssh" itself, and "net.connect:*.github.com"
// matches "net.connect:api.github.com" but not "net.connect:github.com".
//
// Never wins, then auto, then ask; a capability no pattern matches is
// never granted. A never pattern also refuses a name that covers what it
// matches: a name without a target (it covers every target), and for fs
// every ancestor directory of a path it matches, since a grant of a
// directory opens everything beneath it. So with "fs.*:/home/*/.ssh/**"
// in never, "fs.read:/home/ann", "fs.read:/home" and "fs.read:/" are
// refused too, while "fs.read:/home/ann/src" is not. Decide fails closed: an invalid capability name (see
// CheckCapability), an fs target that is not absolute and clean, or any
// invalid pattern in the lists gives DecisionNever. net targets are
// compared in lowercase.
func (c Capabilities) Decide(capability string) Decision {
	d, _ := c.DecideRule(capability)
	return d
}

// DecideRule is Decide that also names the rule that decided: the field
// path of the first matching pattern in the deciding list, such as
// "capabilities.never[3]". The rule is empty when no pattern decided: no
// pattern matches, the name is invalid, or a pattern is invalid.
func (c Capabilities) DecideRule(capability string) (Decision, string) {
	if CheckCapability(capability) != nil {
		return DecisionNever, ""
	}
	name, _ := splitCapability(capability)
	if name.layer == "net" {
		name.target = strings.ToLower(name.target)
	}
	// match returns the index of the first pattern matching name, or -1;
	// a never pattern also matches a name that covers what it matches.
	match := func(patterns []string, never bool) (int, error) {
		found := -1
		for i, p := range patterns {
			if CheckPattern(p) != nil {
				return -1, errBadPattern
			}
			pat, _ := splitCapability(p)
			if found >= 0 || pat.layer != name.layer || !glob(pat.verb, name.verb) {
				continue
			}
			if pat.hasTarget && !(name.hasTarget && glob(pat.target, name.target)) && !(never && covers(name, pat.target)) {
				continue
			}
			found = i
		}
		return found, nil
	}
	never, errN := match(c.Never, true)
	auto, errA := match(c.Auto, false)
	ask, errQ := match(c.Ask, false)
	switch {
	case errN != nil || errA != nil || errQ != nil:
		return DecisionNever, ""
	case never >= 0:
		return DecisionNever, fmt.Sprintf("capabilities.never[%d]", never)
	case auto >= 0:
		return DecisionAuto, fmt.Sprintf("capabilities.auto[%d]", auto)
	case ask >= 0:
		return DecisionAsk, fmt.Sprintf("capabilities.ask[%d]", ask)
	}
	return DecisionNever, ""
}

// covers reports whether a grant of name would include something that the
// target pattern matches: name has no target, or it is an fs path with a
// match beneath it.
func covers(name capName, pattern string) bool {
	if !name.hasTarget {
		return true
	}
	if name.layer != "fs" {
		return false
	}
	dir := name.target
	if dir != "/" {
		dir += "/"
	}
	return globPrefix(pattern, dir)
}

// glob matches s against pattern as described on Decide, in
// O(len(pattern)·len(s)) time whatever the input.
func glob(pattern, s string) bool { return globMatch(pattern, s, false) }

// globPrefix reports whether s is the start of some string that pattern
// matches: whether a prefix of the pattern matches all of s. (What is left
// of a pattern always matches some string.)
func globPrefix(pattern, s string) bool { return globMatch(pattern, s, true) }

func globMatch(pattern, s string, prefix bool) bool {
	// prev[j] reports whether the pattern consumed so far matches s[:j].
	prev := make([]bool, len(s)+1)
	cur := make([]bool, len(s)+1)
	prev[0] = true
	for i := 0; i < len(pattern); {
		if prefix && prev[len(s)] {
			return true
		}
		switch {
		case strings.HasPrefix(pattern[i:], "**"):
			reach := false
			for j := 0; j <= len(s); j++ {
				reach = reach || prev[j]
				cur[j] = reach
			}
			i += 2
		case pattern[i] == '*':
			reach := false
			for j := 0; j <= len(s); j++ {
				if j > 0 && s[j-1] == '/' {
					reach = false
				}
				reach = reach || prev[j]
				cur[j] = reach
			}
			i++
		default:
			cur[0] = false
			for j := 1; j <= len(s); j++ {
				c := s[j-1]
				cur[j] = prev[j-1] && (pattern[i] == c || pattern[i] == '?' && c != '/')
			}
			i++
		}
		prev, cur = cur, prev
	}
	return prev[len(s)]
}
