package redteam

import (
	"net"
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
