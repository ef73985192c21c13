package events

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

// Sink receives every event published on a bus, in order. Emit must not
// block for long: it runs on the publisher's goroutine.
type Sink interface {
	Emit(e *Event)
}

// SinkFunc adapts a function to a Sink.
type SinkFunc func(e *Event)

// Emit calls f(e).
func (f SinkFunc) Emit(e *Event) { f(e) }

// Bus stamps events with a sequence number and time and fans them out to
// its sinks and subscribers. The zero value is not usable; use NewBus.
type Bus struct {
	mu     sync.Mutex
	seq    uint64
	sinks  map[int]Sink
	nextID int
	now    func() time.Time
}

// NewBus returns a bus with the given sinks attached.
func NewBus(sinks ...Sink) *Bus {
	b := &Bus{sinks: make(map[int]Sink), now: time.Now}
	for _, s := range sinks {
		b.Attach(s)
	}
	return b
}

// Attach adds a sink and returns a function that detaches it.
func (b *Bus) Attach(s Sink) (detach func()) {
	b.mu.Lock()
	id := b.nextID
	b.nextID++
	b.sinks[id] = s
	b.mu.Unlock()
	return func() {
		b.mu.Lock()
		delete(b.sinks, id)
		b.mu.Unlock()
	}
}

// Publish stamps e (version, sequence, and time if unset) and delivers it
// to every sink in sequence order.
func (b *Bus) Publish(e *Event) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.seq++
	e.V = Version
	e.Seq = b.seq
	if e.Time.IsZero() {
		e.Time = b.now()
	}
	for _, s := range b.sinks {
		s.Emit(e)
	}
}

// Subscription is a buffered in-process stream of events. Events that
// arrive while the buffer is full are counted in Dropped, never blocking
// the publisher.
type Subscription struct {
	C       <-chan *Event
	c       chan *Event
	mu      sync.Mutex
	dropped uint64
	closed  bool
	detach  func()
}

// Subscribe returns a subscription with room for buffer events.
func (b *Bus) Subscribe(buffer int) *Subscription {
	if buffer < 1 {
		buffer = 1
	}
	s := &Subscription{c: make(chan *Event, buffer)}
	s.C = s.c
	s.detach = b.Attach(s)
	return s
}

// Emit implements Sink.
func (s *Subscription) Emit(e *Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	select {
	case s.c <- e:
	default:
		s.dropped++
	}
}

// Dropped reports how many events did not fit in the buffer.
func (s *Subscription) Dropped() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dropped
}

// Close detaches the subscription and closes C.
func (s *Subscription) Close() {
	s.detach()
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		s.closed = true
		close(s.c)
	}
}

// JSONL writes each event as one JSON line. Write errors are kept and
// reported by Close; an event sink never fails the operation it records.
type JSONL struct {
	mu  sync.Mutex
	w   *bufio.Writer
	c   io.Closer
	err error
}

// NewJSONL writes events to w; if w is an io.Closer, Close closes it.
func NewJSONL(w io.Writer) *JSONL {
	j := &JSONL{w: bufio.NewWriter(w)}
	if c, ok := w.(io.Closer); ok {
		j.c = c
	}
	return j
}

// OpenJSONL appends events to the file at path, creating it 0600.
func OpenJSONL(path string) (*JSONL, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening event file: %w", err)
	}
	return NewJSONL(f), nil
}

// Emit implements Sink. Each line is flushed so that a reader tailing the
// file sees events as they happen.
func (j *JSONL) Emit(e *Event) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.err != nil {
		return
	}
	b, err := json.Marshal(e)
	if err == nil {
		b = append(b, '\n')
		_, err = j.w.Write(b)
	}
	if err == nil {
		err = j.w.Flush()
	}
	j.err = err
}

// Close flushes and closes the underlying writer and returns the first
// error seen while writing.
func (j *JSONL) Close() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if err := j.w.Flush(); j.err == nil {
		j.err = err
	}
	if j.c != nil {
		if err := j.c.Close(); j.err == nil {
			j.err = err
		}
	}
	return j.err
}
