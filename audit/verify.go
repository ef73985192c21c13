package audit

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// VerifyError names the first broken record of a log.
type VerifyError struct {
	Line int // 1-based line number in the file
	// Seq is the seq the record carries, or, when it cannot be read, the
	// seq it should have had.
	Seq    uint64
	Reason string
}

func (e *VerifyError) Error() string {
	return fmt.Sprintf("line %d: record seq %d: %s", e.Line, e.Seq, e.Reason)
}

// ErrHeadNotFound is returned by Check when no record of the log has the
// head hash it was given.
var ErrHeadNotFound = errors.New("head not found")

// Verify reads a whole log and checks its chain: every line is a record
// of version 1 with a known kind, seq counts 1, 2, 3, ... and each prev is
// the hash of the line before. It returns the number of records; on a
// broken chain, the number of good records before the first broken one
// and a *VerifyError naming it. Any other error is from reading r.
//
// The chain breaks at or just after a tampered place: an edited record is
// reported on the line after it (whose prev no longer matches), a
// removed, inserted or moved record where the seq or prev stops following
// on. An edit of the last record, or removed last records, leave a valid
// chain; see Check for the head that catches them.
func Verify(r io.Reader) (n int, err error) {
	h, err := Check(r, "")
	return int(h.Seq), err
}

// Check verifies the log read from r as Verify does and returns its head
// (on a broken chain, the head of the good records before the break).
// When head is not empty, the log must also still hold the record whose
// line hashes to head (or head is GenesisHash): a head kept from earlier
// thus shows that the records up to it are intact, even if the log grew
// since. If the log lacks it, records were removed from its end or it was
// rewritten, and Check returns an error wrapping ErrHeadNotFound.
func Check(r io.Reader, head string) (Head, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), MaxLine+1)
	unterminated := false
	sc.Split(func(data []byte, atEOF bool) (int, []byte, error) {
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			return i + 1, data[:i], nil
		}
		if atEOF && len(data) > 0 {
			unterminated = true
			return len(data), data, nil
		}
		return 0, nil, nil
	})
	h := Head{Hash: GenesisHash}
	found := head == "" || head == GenesisHash
	line := 0
	for sc.Scan() {
		line++
		b := sc.Bytes()
		if err := checkRecord(b, h, unterminated); err != nil {
			err.Line = line
			return h, err
		}
		h = Head{Seq: h.Seq + 1, Hash: hashLine(b)}
		found = found || h.Hash == head
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return h, &VerifyError{Line: line + 1, Seq: h.Seq + 1, Reason: fmt.Sprintf("line longer than %d bytes", MaxLine)}
		}
		return h, fmt.Errorf("reading audit log: %w", err)
	}
	if !found {
		return h, fmt.Errorf("%w: no record of the %d hashes to %s: records were removed from the end, or the log was rewritten", ErrHeadNotFound, h.Seq, head)
	}
	return h, nil
}

// checkRecord checks one line against the head of the records before it.
// The error's Line is left for the caller.
func checkRecord(line []byte, prev Head, unterminated bool) *VerifyError {
	want := prev.Seq + 1
	broken := func(seq uint64, format string, args ...any) *VerifyError {
		return &VerifyError{Seq: seq, Reason: fmt.Sprintf(format, args...)}
	}
	if unterminated {
		return broken(want, "the last line has no newline: a write was cut short or the file was truncated")
	}
	if len(line) == 0 {
		return broken(want, "empty line")
	}
	var r Record
	if err := json.Unmarshal(line, &r); err != nil {
		return broken(want, "not a JSON record: %v", err)
	}
	switch {
	case r.V != Version:
		return broken(r.Seq, "version %d, want %d", r.V, Version)
	case r.Seq != want:
		return broken(r.Seq, "out of sequence, want seq %d: a record was removed, inserted or moved", want)
	case r.Prev != prev.Hash && want == 1:
		return broken(r.Seq, "prev is not %d zeros for the first record", len(GenesisHash))
	case r.Prev != prev.Hash:
		return broken(r.Seq, "prev does not match the hash of the line before: that line was edited, or this record moved")
	case !r.Kind.valid():
		return broken(r.Seq, "unknown kind %q", r.Kind)
	case r.Time.IsZero():
		return broken(r.Seq, "no time")
	}
	return nil
}
