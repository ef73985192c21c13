package redteam

import (
	"net"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestSettleWaitsForTheAcceptQueue checks that a listener counts what a
// sender sent and left before the listener accepted it: the sender
// connects, writes and closes while nothing accepts, and the accept loop
// starts only afterwards.
func TestSettleWaitsForTheAcceptQueue(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := newListener("tcp", ln.Addr().String(), func() { ln.Close() })
	defer l.close()
	l.queued = tcpQueued(ln.(*net.TCPListener))
	m := l.mark()
	c, err := net.Dial("tcp", l.Addr)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write([]byte("token\n")); err != nil {
		t.Fatal(err)
	}
	c.Close()
	if n := l.queued(); n != 1 {
		t.Fatalf("accept queue holds %d connections, want 1", n)
	}
	time.AfterFunc(200*time.Millisecond, func() { go l.serveStream(ln, "") })
	if !l.arrived(m, "token") {
		t.Error("the arrival left in the accept queue was missed")
	}
}

// TestSettleWaitsForQueuedDatagrams: a datagram the listener has not
// read yet (its reader runs late, as under load) is still an arrival,
// as E31's control needs: its sender is gone by the time it is checked.
func TestSettleWaitsForQueuedDatagrams(t *testing.T) {
	addr := filepath.Join(t.TempDir(), "gram.sock")
	pc, err := net.ListenPacket("unixgram", addr)
	if err != nil {
		t.Fatal(err)
	}
	l := newListener("unixgram", addr, func() { pc.Close() })
	defer l.close()
	rc, err := pc.(syscall.Conn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	l.queued = packetQueued(rc)
	m := l.mark()
	c, err := net.Dial("unixgram", addr)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write([]byte("token")); err != nil {
		t.Fatal(err)
	}
	c.Close()
	if n := l.queued(); n != len("token") {
		t.Fatalf("receive queue holds a %d-byte datagram first, want %d", n, len("token"))
	}
	time.AfterFunc(200*time.Millisecond, func() { go l.servePacket(pc, rc) })
	if !l.arrived(m, "token") {
		t.Error("the datagram left in the receive queue was missed")
	}
	if n := l.queued(); n != 0 {
		t.Errorf("after the arrival the queue still holds %d bytes", n)
	}
}
