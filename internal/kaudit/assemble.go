package kaudit

import "time"

// The kernel writes one audit event as several records with the same
// serial, in this order: the Landlock records while the system call runs
// (AUDIT_LANDLOCK_ACCESS, then AUDIT_LANDLOCK_DOMAIN "allocated" the
// first time a domain is logged), then at the call's exit AUDIT_SYSCALL,
// AUDIT_PROCTITLE and AUDIT_EOE. Events of different tasks interleave.
// A task without a syscall audit context, or a record written outside
// any system call, gets no SYSCALL and no EOE: such an event is complete
// only when nothing more has come for it for a while. AUDIT_LANDLOCK_DOMAIN
// "deallocated" is written from a kernel work queue, always alone.

// assembler groups records by serial into Events. It is not safe for
// concurrent use.
type assembler struct {
	// window is how long a group may wait for its EOE.
	window time.Duration
	// maxPending bounds the groups held; past it the oldest is emitted
	// as it is.
	maxPending int

	pending map[uint64]*group
	order   []uint64 // serials in arrival order, for expiry
}

type group struct {
	arrived time.Time
	records []record
}

// maxGroupRecords bounds the records kept for one event.
const maxGroupRecords = 64

func newAssembler(window time.Duration, maxPending int) *assembler {
	return &assembler{window: window, maxPending: maxPending, pending: map[uint64]*group{}}
}

// add takes one record received at now and returns the events it
// completes, in order.
func (a *assembler) add(r record, now time.Time) []Event {
	switch r.Type {
	case typeLandlockDomain:
		if r.get("status") == "deallocated" {
			return []Event{{Domain: domainFrom(r)}}
		}
		fallthrough
	case typeLandlockAccess:
		g, ok := a.pending[r.Serial]
		if !ok {
			var out []Event
			if len(a.pending) >= a.maxPending {
				out = a.emitOldest()
			}
			g = &group{arrived: now}
			a.pending[r.Serial] = g
			a.order = append(a.order, r.Serial)
			return append(out, a.keep(g, r)...)
		}
		return a.keep(g, r)
	case typeSyscall, typeProctitle:
		if g, ok := a.pending[r.Serial]; ok {
			return a.keep(g, r)
		}
	case typeEOE:
		if g, ok := a.pending[r.Serial]; ok {
			a.drop(r.Serial)
			return build(g.records)
		}
	}
	return nil
}

// keep adds r to g unless g is full.
func (a *assembler) keep(g *group, r record) []Event {
	if len(g.records) < maxGroupRecords {
		g.records = append(g.records, r)
	}
	return nil
}

// expire returns the events of groups that have waited window or longer
// for their EOE.
func (a *assembler) expire(now time.Time) []Event {
	var out []Event
	for len(a.order) > 0 {
		g, ok := a.pending[a.order[0]]
		if !ok { // completed by its EOE
			a.order = a.order[1:]
			continue
		}
		if now.Sub(g.arrived) < a.window {
			break
		}
		out = append(out, a.emitOldest()...)
	}
	return out
}

// deadline is when the oldest pending group expires; ok is false when
// none is pending.
func (a *assembler) deadline() (t time.Time, ok bool) {
	for _, s := range a.order {
		if g, ok := a.pending[s]; ok {
			return g.arrived.Add(a.window), true
		}
	}
	return time.Time{}, false
}

// flush returns the events of every pending group, oldest first.
func (a *assembler) flush() []Event {
	var out []Event
	for len(a.order) > 0 {
		out = append(out, a.emitOldest()...)
	}
	return out
}

func (a *assembler) emitOldest() []Event {
	for len(a.order) > 0 {
		s := a.order[0]
		a.order = a.order[1:]
		if g, ok := a.pending[s]; ok {
			delete(a.pending, s)
			return build(g.records)
		}
	}
	return nil
}

func (a *assembler) drop(serial uint64) {
	delete(a.pending, serial)
	// The serial stays in order until it reaches the front; keep order
	// from growing without bound when events complete out of order.
	if len(a.order) > 2*a.maxPending {
		kept := a.order[:0]
		for _, s := range a.order {
			if _, ok := a.pending[s]; ok {
				kept = append(kept, s)
			}
		}
		a.order = kept
	}
}

// build turns one event's records into Events: domain allocations
// first, then one Denial per access record.
func build(rs []record) []Event {
	var sys, title record
	var hasSys, hasTitle bool
	for _, r := range rs {
		switch {
		case r.Type == typeSyscall && !hasSys:
			sys, hasSys = r, true
		case r.Type == typeProctitle && !hasTitle:
			title, hasTitle = r, true
		}
	}
	var out []Event
	for _, r := range rs {
		if r.Type == typeLandlockDomain {
			out = append(out, Event{Domain: domainFrom(r)})
		}
	}
	for _, r := range rs {
		if r.Type == typeLandlockAccess {
			out = append(out, Event{Denial: denialFrom(r, sys, title, hasSys, hasTitle)})
		}
	}
	return out
}
