package proto

import (
	"errors"
	"io"
	"syscall"
	"testing"
)

// TestOneWay checks that frames travel a split connection one way each
// and that neither end of a one-way socket can be used backwards.
func TestOneWay(t *testing.T) {
	aIn, bOut, err := OneWay() // b → a
	if err != nil {
		t.Fatal(err)
	}
	bIn, aOut, err := OneWay() // a → b
	if err != nil {
		t.Fatal(err)
	}
	a, b := NewSplitConn(aIn, aOut), NewSplitConn(bIn, bOut)
	defer b.Close()

	if err := a.Send(&Request{Call: "c1", Op: OpExec, Stdin: []byte("in")}); err != nil {
		t.Fatal(err)
	}
	var req Request
	if err := b.Receive(&req); err != nil || req.Call != "c1" || string(req.Stdin) != "in" {
		t.Fatalf("request: %+v, %v", req, err)
	}
	if err := b.Send(&Response{Call: "c1", Kind: KindResult, Result: &Result{ExitCode: 3, Stdout: []byte("out")}}); err != nil {
		t.Fatal(err)
	}
	var res Response
	if err := a.Receive(&res); err != nil || res.Result == nil || res.Result.ExitCode != 3 || string(res.Result.Stdout) != "out" {
		t.Fatalf("response: %+v, %v", res, err)
	}

	// Backwards: the reading end cannot write, the writing end reads
	// only end of file.
	if _, err := bIn.Write([]byte("x")); !errors.Is(err, syscall.EPIPE) {
		t.Errorf("write on a reading end: %v, want EPIPE", err)
	}
	if n, err := aOut.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Errorf("read on a writing end: %d bytes, %v; want end of file", n, err)
	}

	// Close closes both sockets: the peer sees end of file.
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Receive(&req); !errors.Is(err, io.EOF) {
		t.Errorf("after the peer closed: %v, want EOF", err)
	}
	if _, err := bOut.Write([]byte("x")); !errors.Is(err, syscall.EPIPE) {
		t.Errorf("write to a closed peer: %v, want EPIPE", err)
	}
}
