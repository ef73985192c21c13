package daemon

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestBodyLimits: a body declared over its limit is refused before it is
// sent; bodies in flight together are bounded by the daemon's budget
// (503 busy past it); and, as the control, the same request succeeds
// once the budget is free again.
func TestBodyLimits(t *testing.T) {
	saved := bodiesInFlight
	bodiesInFlight = 8 << 20
	defer func() { bodiesInFlight = saved }()
	socket, c, _ := daemonUnderTest(t)
	_, body := raw(t, c, "POST", "/v1/sessions", `{"workspace":"`+workspace(t)+`"}`)
	id := strings.Split(body, `"`)[3]
	put := "/v1/sessions/" + id + "/files/f"

	// Declared over the limit: answered without sending the body.
	conn, err := net.Dial("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "PUT %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", put, maxFileBody+1)
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if resp, err := http.ReadResponse(bufio.NewReader(conn), nil); err != nil || resp.StatusCode != 413 {
		t.Errorf("a declared length over the limit: %v %v, want 413 before the body", resp, err)
	}

	// Two requests hold 3 MiB each of 4 MiB bodies and stall.
	var stalled []net.Conn
	for range 2 {
		s, err := net.Dial("unix", socket)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		fmt.Fprintf(s, "PUT %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", put, 4<<20)
		s.Write(bytes.Repeat([]byte("a"), 3<<20))
		stalled = append(stalled, s)
	}
	time.Sleep(200 * time.Millisecond) // let the daemon read what was sent
	code, body := raw(t, c, "PUT", put, strings.Repeat("b", 4<<20))
	if code != 503 || !strings.Contains(body, `"busy"`) {
		t.Errorf("a body past the budget: %d %.200s, want 503 busy", code, body)
	}
	for _, s := range stalled {
		s.Close()
	}
	// Control: the budget comes back when the stalled requests end.
	deadline := time.Now().Add(5 * time.Second)
	for {
		code, body = raw(t, c, "PUT", put, strings.Repeat("b", 4<<20))
		if code == 204 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if code != 204 {
		t.Errorf("control: the same PUT after the stalled requests ended: %d %.200s", code, body)
	}
	if b, err := c.ReadFile(t.Context(), id, "f"); err != nil || len(b) != 4<<20 {
		t.Errorf("control: the file holds %d bytes, %v", len(b), err)
	}
}
