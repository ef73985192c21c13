// Package audit is cordon's tamper-evident, append-only audit log of
// capability grants: one JSON record a line (JSONL), each carrying in
// "prev" the SHA-256 of the exact bytes of the line before it (64 zeros
// for the first), so that editing, removing, inserting or reordering a
// record breaks the chain at or just after the place it happened. Verify
// and Check find the first broken record; `cordon audit verify` is the
// command.
//
// What the chain alone cannot detect:
//
//   - Removing the last records, or editing the last one: what is left is
//     a valid, shorter chain.
//   - A rewrite by someone who can write the file: the chain has no secret,
//     so a forger can recompute every hash after the record they changed.
//
// Both are caught by comparing with a head kept somewhere the forger cannot
// write: Log.Head after an append, or the head `cordon audit verify`
// prints, later passed to Check (`cordon audit verify --head HASH`), which
// then requires the log to still contain that record.
//
// A Log holds an exclusive flock(2) on its file, so a second Log (in this
// or another process) cannot fork the chain. Records are written with one
// write(2) each and fsynced before Append returns.
package audit

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Version is the record format version, the "v" of every record.
const Version = 1

// MaxLine is the longest record line, in bytes without the newline, that
// Append writes and Verify accepts.
const MaxLine = 64 << 10

// GenesisHash is the "prev" of the first record, and the hash of the head
// of an empty log.
var GenesisHash = strings.Repeat("0", 64)

// Kind is what a record is about.
type Kind string

// Record kinds.
const (
	GrantRequest  Kind = "grant.request"  // a session asked for a capability
	GrantDecision Kind = "grant.decision" // policy or a person decided a request
	GrantUse      Kind = "grant.use"      // a call first relied on a grant
	GrantExpire   Kind = "grant.expire"   // a grant ended: its TTL, call or session ended
	GrantRevoke   Kind = "grant.revoke"   // a person withdrew a grant
)

func (k Kind) valid() bool {
	switch k {
	case GrantRequest, GrantDecision, GrantUse, GrantExpire, GrantRevoke:
		return true
	}
	return false
}

// Record is one line of the log. Append fills V, Seq, Time and Prev; the
// caller fills the rest. The JSON field names and order are stable within
// version 1; docs/grants.md describes each per kind.
type Record struct {
	V    int       `json:"v"`
	Seq  uint64    `json:"seq"`  // 1, 2, 3, ... without gaps
	Time time.Time `json:"time"` // UTC, RFC 3339 with nanoseconds
	// Prev is the hex SHA-256 of the previous record's line without its
	// newline; GenesisHash for the first record.
	Prev       string `json:"prev"`
	Kind       Kind   `json:"kind"`
	Session    string `json:"session"`
	Grant      string `json:"grant"`
	Capability string `json:"capability"`
	Scope      string `json:"scope"`
	TTLSeconds int64  `json:"ttl_s,omitempty"`
	// Decision is "auto", "ask" or "never" (policy) or "approved" or
	// "denied" (a person), on grant.decision records.
	Decision string `json:"decision,omitempty"`
	// DecidedBy is who took this step: "policy:capabilities.auto[2]",
	// "uid:1000", or what ended a grant ("ttl", "call", "session").
	DecidedBy string `json:"decided_by"`
	Reason    string `json:"reason"`
	Note      string `json:"note,omitempty"`
	// PolicyHash is the hex SHA-256 of the session's policy text.
	PolicyHash string `json:"policy_hash"`
	Call       string `json:"call,omitempty"`
}

// Head identifies the last record of a log: its seq and the hash of its
// line, which is the Prev the next record will carry. The head of an
// empty log is {0, GenesisHash}.
type Head struct {
	Seq  uint64 `json:"seq"`
	Hash string `json:"hash"`
}

// hashLine returns the hex SHA-256 of a record line without its newline.
func hashLine(line []byte) string {
	sum := sha256.Sum256(line)
	return hex.EncodeToString(sum[:])
}

// Log appends records to one audit log file. Its methods are safe for
// concurrent use.
type Log struct {
	mu   sync.Mutex
	f    *os.File
	path string
	head Head
	size int64 // bytes of whole records in the file
	// err is set once a write failed or the log was closed; every later
	// Append returns it.
	err error
	now func() time.Time
}

var errClosed = errors.New("audit log is closed")

// Open opens the audit log at path for appending, creating it (mode 0600,
// missing parent directories 0700) if it does not exist. It verifies the
// records already there and continues their chain; if the chain is broken
// it refuses, with an error wrapping the *VerifyError that names the first
// broken record, rather than start a new chain after it. Open fails too
// when another Log holds the file.
func Open(path string) (*Log, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("opening audit log: %w", err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening audit log: %w", err)
	}
	fail := func(err error) (*Log, error) {
		f.Close()
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		return fail(fmt.Errorf("opening audit log: %w", err))
	}
	if !fi.Mode().IsRegular() {
		return fail(fmt.Errorf("opening audit log %s: not a regular file", path))
	}
	if err := lock(f); err != nil {
		return fail(fmt.Errorf("opening audit log %s: %w", path, err))
	}
	// Under the lock nobody else appends: the size is that of what Check
	// reads.
	if fi, err = f.Stat(); err != nil {
		return fail(fmt.Errorf("opening audit log: %w", err))
	}
	head, err := Check(f, "")
	if err != nil {
		return fail(fmt.Errorf("audit log %s: will not continue a broken chain: %w", path, err))
	}
	// The file may be new: make its directory entry as durable as the
	// records Append will fsync into it.
	if err := syncDir(filepath.Dir(path)); err != nil {
		return fail(fmt.Errorf("opening audit log: %w", err))
	}
	return &Log{f: f, path: path, head: head, size: fi.Size(), now: time.Now}, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Append completes r (V, Seq, Time and Prev), writes it as one line and
// fsyncs the file before returning the completed record: once Append has
// returned without error the record is durable. A record with an unknown
// Kind, or whose line would be longer than MaxLine, is refused.
//
// When the write or the fsync fails the record is cut off again (best
// effort) and the Log refuses every later Append: open it again, which
// re-verifies what is on disk.
func (l *Log) Append(r Record) (Record, error) {
	if !r.Kind.valid() {
		return Record{}, fmt.Errorf("appending audit record: unknown kind %q", r.Kind)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err != nil {
		return Record{}, fmt.Errorf("appending audit record: %w", l.err)
	}
	r.V = Version
	r.Seq = l.head.Seq + 1
	r.Time = l.now().UTC()
	r.Prev = l.head.Hash
	line, err := json.Marshal(r)
	if err != nil {
		return Record{}, fmt.Errorf("appending audit record: %w", err)
	}
	if len(line) > MaxLine {
		return Record{}, fmt.Errorf("appending audit record: %d bytes, longer than %d", len(line), MaxLine)
	}
	n, err := l.f.Write(append(line, '\n'))
	if err == nil {
		err = l.f.Sync()
	}
	if err != nil {
		if n > 0 {
			// Leave whole records only, so that the file still verifies.
			l.f.Truncate(l.size)
		}
		l.err = fmt.Errorf("writing record seq %d to %s failed: %w", r.Seq, l.path, err)
		return Record{}, fmt.Errorf("appending audit record: %w", err)
	}
	l.size += int64(n)
	l.head = Head{Seq: r.Seq, Hash: hashLine(line)}
	return r, nil
}

// Head returns the log's current head. Keep it (print it, send it
// elsewhere) to detect later that records were removed from the end.
func (l *Log) Head() Head {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.head
}

// Path returns the file the log appends to.
func (l *Log) Path() string { return l.path }

// Close closes the file, releasing its lock. Later Appends fail.
func (l *Log) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err == errClosed {
		return nil
	}
	l.err = errClosed
	if err := l.f.Close(); err != nil {
		return fmt.Errorf("closing audit log: %w", err)
	}
	return nil
}
