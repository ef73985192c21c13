package kaudit

import (
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Audit record types this package reads (include/uapi/linux/audit.h).
const (
	typeSyscall        = 1300 // AUDIT_SYSCALL
	typeEOE            = 1320 // AUDIT_EOE: end of a multi-record event
	typeProctitle      = 1327 // AUDIT_PROCTITLE
	typeLandlockAccess = 1423 // AUDIT_LANDLOCK_ACCESS
	typeLandlockDomain = 1424 // AUDIT_LANDLOCK_DOMAIN
)

// maxFields bounds the fields kept from one record; the kernel's records
// have a few dozen at most.
const maxFields = 128

// record is one audit record: its type, the event it belongs to (time and
// serial, as in "audit(1732832799.123:4567)") and its fields in order,
// with values as the kernel wrote them.
type record struct {
	Type   uint16
	Time   time.Time
	Serial uint64
	Fields []field
}

type field struct{ Key, Value string }

// untrusted are the fields the kernel writes with audit_log_untrustedstring
// (or audit_log_d_path, which uses it): quoted when the value is plain
// printable ASCII without a quote or space, else as bare upper-case hex.
// A process chooses these values (its name, a file name), so only these
// are ever hex-decoded.
var untrusted = map[string]bool{
	"path": true, "name": true, "dev": true, "comm": true, "exe": true,
	"ocomm": true, "proctitle": true, "cwd": true,
}

// raw returns the value of key as written, and whether the record has it.
func (r record) raw(key string) (string, bool) {
	for _, f := range r.Fields {
		if f.Key == key {
			return f.Value, true
		}
	}
	return "", false
}

// get returns the decoded value of key: quotes removed, and hex decoded
// for the untrusted fields. A value the kernel wrote as a placeholder
// ("(null)", "?", "<too_long>") is returned as written.
func (r record) get(key string) string {
	v, _ := r.raw(key)
	return decode(key, v)
}

func decode(key, v string) string {
	if n := len(v); n >= 2 && (v[0] == '"' && v[n-1] == '"' || v[0] == '\'' && v[n-1] == '\'') {
		return v[1 : n-1]
	}
	if untrusted[key] && isHex(v) {
		b, _ := hex.DecodeString(v)
		return string(b)
	}
	return v
}

func isHex(s string) bool {
	if s == "" || len(s)%2 != 0 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'A' <= c && c <= 'F' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// int returns key as a decimal integer, or 0.
func (r record) int(key string) int64 {
	v, _ := r.raw(key)
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0
	}
	return n
}

// uint returns key as an unsigned 32-bit decimal, or def.
func (r record) uint(key string, def uint64) uint64 {
	v, _ := r.raw(key)
	n, err := strconv.ParseUint(v, 10, 32)
	if err != nil {
		return def
	}
	return n
}

// parseRecord parses the text of one record as the kernel sends it over
// netlink: "audit(SECONDS.MILLIS:SERIAL): key=value ...". The type comes
// from the netlink header.
func parseRecord(typ uint16, text string) (record, error) {
	r := record{Type: typ}
	rest, ok := strings.CutPrefix(text, "audit(")
	if !ok {
		return r, errors.New("audit record without audit(TIME:SERIAL) stamp")
	}
	stamp, rest, ok := strings.Cut(rest, "):")
	if !ok {
		return r, errors.New("audit record stamp not closed")
	}
	when, serial, ok := strings.Cut(stamp, ":")
	if !ok {
		return r, fmt.Errorf("audit record stamp %q has no serial", stamp)
	}
	sec, milli, _ := strings.Cut(when, ".")
	s, err := strconv.ParseInt(sec, 10, 64)
	if err != nil || s < 0 {
		return r, fmt.Errorf("audit record time %q", when)
	}
	var ms int64
	if milli != "" {
		if ms, err = strconv.ParseInt(milli, 10, 64); err != nil || ms < 0 || ms > 999 {
			return r, fmt.Errorf("audit record time %q", when)
		}
	}
	r.Time = time.Unix(s, ms*int64(time.Millisecond))
	if r.Serial, err = strconv.ParseUint(serial, 10, 64); err != nil {
		return r, fmt.Errorf("audit record serial %q", serial)
	}
	r.Fields = parseFields(rest)
	return r, nil
}

// parseFields splits "key=value key="quoted value" ..." into fields.
// Words without '=' are skipped. Parsing stops at a GS (0x1d), after
// which auditd's enriched log lines carry their own interpretations.
func parseFields(s string) []field {
	if i := strings.IndexByte(s, 0x1d); i >= 0 {
		s = s[:i]
	}
	var fs []field
	for len(fs) < maxFields {
		s = strings.TrimLeft(s, " ")
		if s == "" {
			break
		}
		eq := strings.IndexAny(s, "= ")
		if eq < 0 {
			break
		}
		if s[eq] == ' ' { // a word that is no key=value
			s = s[eq:]
			continue
		}
		key := s[:eq]
		s = s[eq+1:]
		var val string
		if s != "" && (s[0] == '"' || s[0] == '\'') {
			if end := strings.IndexByte(s[1:], s[0]); end >= 0 {
				val, s = s[:end+2], s[end+2:]
			} else {
				val, s = s, ""
			}
		} else if sp := strings.IndexByte(s, ' '); sp >= 0 {
			val, s = s[:sp], s[sp:]
		} else {
			val, s = s, ""
		}
		if key != "" {
			fs = append(fs, field{key, val})
		}
	}
	return fs
}

// parseLogLine parses a record as auditd writes it to its log, and as
// the kernel prints it to its own log when no audit daemon is
// registered: "type=1423 msg=audit(...): ..." or "type=1423
// audit(...): ...". The test fixtures are in this form.
func parseLogLine(line string) (record, error) {
	rest, ok := strings.CutPrefix(strings.TrimSpace(line), "type=")
	if !ok {
		return record{}, errors.New("audit log line without type=")
	}
	num, rest, _ := strings.Cut(rest, " ")
	typ, err := strconv.ParseUint(num, 10, 16)
	if err != nil {
		return record{}, fmt.Errorf("audit log line type %q", num)
	}
	rest = strings.TrimPrefix(strings.TrimLeft(rest, " "), "msg=")
	return parseRecord(uint16(typ), rest)
}
