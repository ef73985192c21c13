package events

import (
	"bufio"
	"bytes"
	"encoding/json"
	"testing"
)

func TestBusStampsAndOrders(t *testing.T) {
	var got []*Event
	b := NewBus(SinkFunc(func(e *Event) { got = append(got, e) }))
	sub := b.Subscribe(1)
	b.Publish(&Event{Kind: CallStart})
	b.Publish(&Event{Kind: CallEnd})
	if len(got) != 2 || got[0].Seq != 1 || got[1].Seq != 2 || got[0].V != Version || got[0].Time.IsZero() {
		t.Fatalf("events %+v", got)
	}
	// The subscription's buffer holds one event; the second is dropped
	// and counted, never blocking the publisher.
	if e := <-sub.C; e.Kind != CallStart {
		t.Errorf("subscription got %v", e.Kind)
	}
	if sub.Dropped() != 1 {
		t.Errorf("dropped %d, want 1", sub.Dropped())
	}
	sub.Close()
	b.Publish(&Event{Kind: Deny})
	if _, ok := <-sub.C; ok {
		t.Errorf("closed subscription still receives")
	}
	if len(got) != 3 {
		t.Errorf("sink missed an event after a subscription closed")
	}
}

func TestJSONL(t *testing.T) {
	var buf bytes.Buffer
	j := NewJSONL(&buf)
	b := NewBus(j)
	b.Publish(&Event{Session: "s", Call: "c1", Kind: Deny, Layer: LayerSeccomp, Op: "mount", Rule: "r", Remedy: &Remedy{Capability: "proc.ptrace"}})
	b.Publish(&Event{Session: "s", Kind: SessionStop})
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(&buf)
	var n int
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		if m["v"] != float64(1) || m["session"] != "s" {
			t.Errorf("line %v", m)
		}
		n++
	}
	if n != 2 {
		t.Errorf("%d lines, want 2", n)
	}
}

func TestFold(t *testing.T) {
	a := &Event{Kind: Deny, Layer: LayerSeccomp, Op: "mount", Rule: "r"}
	b := &Event{Kind: Deny, Layer: LayerSeccomp, Op: "mount", Rule: "r"}
	c := &Event{Kind: Deny, Layer: LayerSeccomp, Op: "bpf", Rule: "r"}
	out := Fold([]*Event{a, b, c, &Event{Kind: Deny, Layer: LayerSeccomp, Op: "mount", Rule: "r"}})
	if len(out) != 2 || out[0] != a || out[0].Detail["count"] != 3 || out[1] != c {
		t.Fatalf("fold: %+v", out)
	}
	if _, ok := c.Detail["count"]; ok {
		t.Errorf("a single denial got a count")
	}
}
