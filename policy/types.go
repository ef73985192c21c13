package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Access is how the session sees the workspace.
type Access string

const (
	AccessWrite Access = "write" // read-write; the default when empty
	AccessRead  Access = "read"  // read-only
)

// OrDefault returns a, or AccessWrite when a is empty.
func (a Access) OrDefault() Access {
	if a == "" {
		return AccessWrite
	}
	return a
}

func (a Access) valid() bool { return a == "" || a == AccessWrite || a == AccessRead }

// UnmarshalYAML accepts "write" or "read".
func (a *Access) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return nodeError(n, "want \"write\" or \"read\"")
	}
	v := Access(n.Value)
	if !v.valid() {
		return nodeError(n, "invalid access %q: want \"write\" or \"read\"", n.Value)
	}
	*a = v
	return nil
}

// UnmarshalJSON accepts "write", "read" or "".
func (a *Access) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	if !Access(s).valid() {
		return fmt.Errorf("invalid access %q: want \"write\" or \"read\"", s)
	}
	*a = Access(s)
	return nil
}

// ByteSize is a size in bytes. In YAML and JSON it is an integer (bytes) or
// a string: a decimal number with an optional fraction and a unit, e.g.
// "2GiB", "1.5GiB", "512MiB", "100kB", "4096". Binary units: B, KiB, MiB,
// GiB, TiB, PiB, EiB. Decimal units: kB (or KB), MB, GB, TB, PB, EB. Units
// are case-sensitive and follow the number without a space; a fraction
// must come out to a whole number of bytes.
type ByteSize int64

// Common sizes.
const (
	KiB ByteSize = 1 << (10 * (iota + 1))
	MiB
	GiB
	TiB
	PiB
	EiB
)

var byteUnits = map[string]int64{
	"": 1, "B": 1,
	"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40, "PiB": 1 << 50, "EiB": 1 << 60,
	"kB": 1e3, "KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12, "PB": 1e15, "EB": 1e18,
}

var errByteSyntax = errors.New(`want a number and a unit, e.g. "2GiB", "512MiB", "1.5GB" or "4096"`)

// ParseByteSize parses a size as described on ByteSize.
func ParseByteSize(s string) (ByteSize, error) {
	rest := s
	neg := strings.HasPrefix(rest, "-")
	if neg {
		rest = rest[1:]
	}
	intPart := leadingDigits(rest)
	rest = rest[len(intPart):]
	var frac string
	if strings.HasPrefix(rest, ".") {
		frac = leadingDigits(rest[1:])
		if frac == "" {
			return 0, fmt.Errorf("invalid byte size %q: %w", s, errByteSyntax)
		}
		rest = rest[1+len(frac):]
	}
	if intPart == "" {
		return 0, fmt.Errorf("invalid byte size %q: %w", s, errByteSyntax)
	}
	mult, ok := byteUnits[rest]
	if !ok {
		return 0, fmt.Errorf("invalid byte size %q: unknown unit %q (units: B, KiB, MiB, GiB, TiB, PiB, EiB, kB, MB, GB, TB, PB, EB)", s, rest)
	}
	if len(intPart)+len(frac) > 40 {
		return 0, fmt.Errorf("invalid byte size %q: out of range", s)
	}
	// n = (intPart.frac) * mult, exactly.
	num, _ := new(big.Int).SetString(intPart+frac, 10)
	num.Mul(num, big.NewInt(mult))
	den := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(len(frac))), nil)
	q, r := new(big.Int).QuoRem(num, den, new(big.Int))
	if r.Sign() != 0 {
		return 0, fmt.Errorf("invalid byte size %q: not a whole number of bytes", s)
	}
	if neg {
		q.Neg(q)
	}
	if !q.IsInt64() {
		return 0, fmt.Errorf("invalid byte size %q: out of range", s)
	}
	return ByteSize(q.Int64()), nil
}

func leadingDigits(s string) string {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	return s[:i]
}

// String returns the size in the largest binary unit that divides it
// exactly ("4GiB", "1536KiB"), in bytes with a "B" suffix otherwise
// ("1000B"), and "0" for zero. ParseByteSize reads it back.
func (b ByteSize) String() string {
	if b == 0 {
		return "0"
	}
	sign := ""
	mag := uint64(b)
	if b < 0 {
		sign = "-"
		mag = uint64(-b) // also right for math.MinInt64
	}
	units := []struct {
		name string
		size uint64
	}{{"EiB", 1 << 60}, {"PiB", 1 << 50}, {"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}}
	for _, u := range units {
		if mag%u.size == 0 {
			return sign + strconv.FormatUint(mag/u.size, 10) + u.name
		}
	}
	return sign + strconv.FormatUint(mag, 10) + "B"
}

// UnmarshalYAML accepts an integer number of bytes or a size string.
func (b *ByteSize) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return nodeError(n, "invalid byte size: %v", errByteSyntax)
	}
	v, err := ParseByteSize(n.Value)
	if err != nil {
		return nodeError(n, "%v", err)
	}
	*b = v
	return nil
}

// MarshalYAML writes the String form, or the integer 0.
func (b ByteSize) MarshalYAML() (any, error) {
	if b == 0 {
		return 0, nil
	}
	return b.String(), nil
}

// UnmarshalJSON accepts an integer number of bytes or a size string.
func (b *ByteSize) UnmarshalJSON(data []byte) error {
	data = bytes.TrimSpace(data)
	s := string(data)
	if len(data) > 0 && data[0] == '"' {
		if err := json.Unmarshal(data, &s); err != nil {
			return err
		}
	}
	v, err := ParseByteSize(s)
	if err != nil {
		return err
	}
	*b = v
	return nil
}

// MarshalJSON writes the String form as a JSON string.
func (b ByteSize) MarshalJSON() ([]byte, error) {
	return json.Marshal(b.String())
}

// Duration is a time.Duration written as a Go duration string ("10m",
// "1h30m", "250ms"). The integer 0 is accepted as "0s"; any other bare
// number is rejected because its unit would be a guess.
type Duration time.Duration

// String returns the Go duration string without zero trailing units:
// "10m" rather than "10m0s", "1h" rather than "1h0m0s".
func (d Duration) String() string {
	s := time.Duration(d).String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

// ParseDuration parses a duration as described on Duration.
func ParseDuration(s string) (Duration, error) {
	if s == "0" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("invalid duration %q: want a number with a unit, e.g. \"10m\", \"90s\", \"1h30m\"", s)
	}
	return Duration(d), nil
}

// UnmarshalYAML accepts a Go duration string or the integer 0.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return nodeError(n, "invalid duration: want a string such as \"10m\"")
	}
	v, err := ParseDuration(n.Value)
	if err != nil {
		return nodeError(n, "%v", err)
	}
	*d = v
	return nil
}

// MarshalYAML writes the String form.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// UnmarshalJSON accepts a Go duration string or the number 0.
func (d *Duration) UnmarshalJSON(data []byte) error {
	var s string
	if string(bytes.TrimSpace(data)) == "0" {
		s = "0"
	} else if err := json.Unmarshal(data, &s); err != nil {
		return fmt.Errorf("invalid duration: want a string such as \"10m\"")
	}
	v, err := ParseDuration(s)
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// MarshalJSON writes the String form as a JSON string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// simple reports whether the mount is written as a plain string.
func (m Mount) simple() bool { return m.At == "" && !m.Optional }

// UnmarshalYAML accepts a plain string (the host path) or a mapping with
// the keys path, at and optional. Unknown and duplicate keys are errors.
func (m *Mount) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		*m = Mount{Path: n.Value}
		return nil
	case yaml.MappingNode:
	default:
		return nodeError(n, "a mount is a path or a mapping with the keys path, at, optional")
	}
	var out Mount
	var errs []string
	fail := func(n *yaml.Node, format string, args ...any) {
		errs = append(errs, nodeError(n, format, args...).(*yaml.TypeError).Errors...)
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if first, dup := seen[k.Value]; dup {
			fail(k, "duplicate key %q (first at line %d)", k.Value, first)
			continue
		}
		seen[k.Value] = k.Line
		null := v.Kind == yaml.ScalarNode && v.ShortTag() == "!!null"
		switch k.Value {
		case "path", "at":
			if v.Kind != yaml.ScalarNode {
				fail(v, "wrong type: want a string")
				continue
			}
			s := v.Value
			if null {
				s = ""
			}
			if k.Value == "path" {
				out.Path = s
			} else {
				out.At = s
			}
		case "optional":
			if null {
				continue
			}
			if v.Kind != yaml.ScalarNode || v.ShortTag() != "!!bool" {
				fail(v, "wrong type: want true or false")
				continue
			}
			b, err := strconv.ParseBool(strings.ToLower(v.Value))
			if err != nil {
				fail(v, "wrong type: want true or false")
				continue
			}
			out.Optional = b
		default:
			fail(k, "unknown key %q; valid keys: path, at, optional", k.Value)
		}
	}
	if len(errs) > 0 {
		return &yaml.TypeError{Errors: errs}
	}
	*m = out
	return nil
}

// MarshalYAML writes a plain string when At and Optional are unset.
func (m Mount) MarshalYAML() (any, error) {
	if m.simple() {
		return m.Path, nil
	}
	type plain Mount
	return plain(m), nil
}

// UnmarshalJSON accepts a string or an object with the keys path, at and
// optional; unknown keys are errors.
func (m *Mount) UnmarshalJSON(data []byte) error {
	data = bytes.TrimSpace(data)
	if len(data) > 0 && data[0] == '"' {
		var s string
		if err := json.Unmarshal(data, &s); err != nil {
			return err
		}
		*m = Mount{Path: s}
		return nil
	}
	type plain Mount
	var p plain
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return fmt.Errorf("invalid mount: %w", err)
	}
	*m = Mount(p)
	return nil
}

// MarshalJSON writes a string when At and Optional are unset.
func (m Mount) MarshalJSON() ([]byte, error) {
	if m.simple() {
		return json.Marshal(m.Path)
	}
	type plain Mount
	return json.Marshal(plain(m))
}
