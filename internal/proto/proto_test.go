package proto

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"
)

type rwc struct {
	io.Reader
	io.Writer
}

func (rwc) Close() error { return nil }

// conn frames a reader and a writer as the stages' sockets are framed.
func conn(x rwc) *Conn { return NewSplitConn(x, x) }

func TestFrameRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	c := conn(rwc{&buf, &buf})
	in := &Request{Call: "c1", Op: OpExec, Argv: []string{"sh", "-c", "true"}, Stdin: []byte{0, 1, 255}}
	if err := c.Send(in); err != nil {
		t.Fatal(err)
	}
	var out Request
	if err := c.Receive(&out); err != nil {
		t.Fatal(err)
	}
	if out.Call != "c1" || len(out.Argv) != 3 || !bytes.Equal(out.Stdin, in.Stdin) {
		t.Fatalf("got %+v", out)
	}
	res := &Response{Call: "c1", Kind: KindResult, Result: &Result{ExitCode: 2, Stdout: []byte("out"), Stderr: []byte("err\xff"), Data: []byte("d")}}
	if err := c.Send(res); err != nil {
		t.Fatal(err)
	}
	var got Response
	if err := c.Receive(&got); err != nil {
		t.Fatal(err)
	}
	if r := got.Result; r.ExitCode != 2 || string(r.Stdout) != "out" || string(r.Stderr) != "err\xff" || string(r.Data) != "d" {
		t.Fatalf("result %+v", r)
	}
	if err := c.Receive(&out); err != io.EOF {
		t.Fatalf("end of stream: %v", err)
	}
}

func TestFrameTooLarge(t *testing.T) {
	var hdr [8]byte
	binary.BigEndian.PutUint32(hdr[:], MaxFrame/2)
	binary.BigEndian.PutUint32(hdr[4:], MaxFrame/2+1)
	c := conn(rwc{bytes.NewReader(hdr[:]), io.Discard})
	var r Request
	if err := c.Receive(&r); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("oversized frame: %v", err)
	}
}

// FuzzReceive: no input makes the decoder panic or allocate past MaxFrame.
func FuzzReceive(f *testing.F) {
	f.Add([]byte("\x00\x00\x00\x02\x00\x00\x00\x00{}"))
	f.Add([]byte("\x00\x00\x00\x1c\x00\x00\x00\x03{\"result\":{\"stdout_len\":2}}abc"))
	f.Add([]byte("\x00\x00\x00\x05\x00\x00\x00\x00{\"a\":"))
	f.Add([]byte("\xff\xff\xff\xff\x00\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c := conn(rwc{bytes.NewReader(b), io.Discard})
		for i := 0; i < 4; i++ {
			var r Response
			if c.Receive(&r) != nil {
				return
			}
		}
	})
}

// TestFrameRelay: a frame read without decoding and sent on as it came
// decodes at the far end as the original; Peek reads its header only.
func TestFrameRelay(t *testing.T) {
	var in, out bytes.Buffer
	src := conn(rwc{&in, &in})
	res := &Response{Call: "c7", Kind: KindResult, Result: &Result{ExitCode: 1, Stdout: []byte("o"), Stderr: []byte("e"),
		Error: &CallError{Code: CodeDenied, Path: "p"}, Timing: map[string]int64{"run_us": 3}}}
	if err := src.Send(res); err != nil {
		t.Fatal(err)
	}
	f, err := src.ReceiveFrame()
	if err != nil {
		t.Fatal(err)
	}
	var peek struct {
		Call   string `json:"call"`
		Result *struct {
			Error *CallError `json:"error"`
		} `json:"result"`
	}
	if err := f.Peek(&peek); err != nil || peek.Call != "c7" || peek.Result.Error.Path != "p" {
		t.Fatalf("peek: %+v, %v", peek, err)
	}
	relay := conn(rwc{&out, &out})
	if err := relay.SendFrame(f); err != nil {
		t.Fatal(err)
	}
	var got Response
	if err := relay.Receive(&got); err != nil {
		t.Fatal(err)
	}
	if r := got.Result; got.Call != "c7" || r.ExitCode != 1 || string(r.Stdout) != "o" || string(r.Stderr) != "e" || r.Timing["run_us"] != 3 {
		t.Fatalf("relayed: %+v", r)
	}
}
