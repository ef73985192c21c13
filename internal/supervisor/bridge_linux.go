package supervisor

import (
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cordon-sandbox/cordon/internal/plan"
)

// The bridge is the session's one way out. The supervisor listens on
// 127.0.0.1:plan.ProxyPort inside the session's network namespace and
// hands every accepted connection to the host as a file descriptor
// (SCM_RIGHTS on a datagram socketpair), where the egress proxy serves
// it. Passing the socket, rather than relaying its bytes, keeps the
// supervisor off the data path: it copies nothing, holds no buffers per
// connection, and a slow download cannot stall its other work.

// expectTTL bounds how long a connect to the proxy port waits in the
// bridge's queue for its accept; an entry older than that belonged to a
// connection that never completed.
const expectTTL = 10 * time.Second

// maxExpected bounds the queue of calls waiting for an accept.
const maxExpected = 256

type bridge struct {
	host *net.UnixConn // to the host: one datagram per accepted connection
	ln   *net.TCPListener
	// rulesets are Landlock ruleset descriptors the host sends the other
	// way on the same socket, for the next executor (a filesystem grant).
	rulesets chan int

	mu       sync.Mutex
	expected []expectation // connects to the proxy port, oldest first
}

type expectation struct {
	call string
	at   time.Time
}

// listenProxy opens the session's proxy port. It runs before the executor
// exists, so no session process can take the port first.
func listenProxy(host *os.File) (*bridge, error) {
	ln, err := net.ListenTCP("tcp4", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: plan.ProxyPort})
	if err != nil {
		return nil, fmt.Errorf("listening on the proxy port: %w", err)
	}
	c, err := net.FileConn(host)
	host.Close()
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("the host's egress socket: %w", err)
	}
	uc, ok := c.(*net.UnixConn)
	if !ok {
		ln.Close()
		c.Close()
		return nil, errors.New("the host's egress socket is not a unix socket")
	}
	b := &bridge{host: uc, ln: ln, rulesets: make(chan int, 4)}
	go b.receive()
	return b, nil
}

// receive takes the descriptors the host passes to the supervisor.
func (b *bridge) receive() {
	buf := make([]byte, 16)
	oob := make([]byte, unix.CmsgSpace(4))
	for {
		n, oobn, _, _, err := b.host.ReadMsgUnix(buf, oob)
		if err != nil || n == 0 {
			return // the host is gone
		}
		msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
		if err != nil || len(msgs) != 1 || string(buf[:n]) != "ruleset" {
			continue
		}
		fds, err := unix.ParseUnixRights(&msgs[0])
		if err != nil {
			continue
		}
		for _, fd := range fds[1:] {
			unix.Close(fd)
		}
		if len(fds) > 0 {
			b.rulesets <- fds[0]
		}
	}
}

// expect notes that a process of call is connecting to the proxy port, so
// that the connection it makes is attributed to the call. Connections are
// accepted in the order their handshakes complete, which is the order of
// the connects in all but a race between two calls' processes; in that
// race a proxy event may name the other call.
func (b *bridge) expect(call string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.expected) == maxExpected {
		b.expected = b.expected[1:]
	}
	b.expected = append(b.expected, expectation{call: call, at: time.Now()})
}

// next takes the call of the oldest connect still waiting for an accept.
func (b *bridge) next() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	for len(b.expected) > 0 {
		e := b.expected[0]
		b.expected = b.expected[1:]
		if time.Since(e.at) < expectTTL {
			return e.call
		}
	}
	return ""
}

// serve accepts connections until the listener fails and passes each to
// the host with the call it belongs to as the datagram's payload.
func (b *bridge) serve() {
	for {
		c, err := b.ln.AcceptTCP()
		if err != nil {
			if errors.Is(err, unix.EMFILE) || errors.Is(err, unix.ENFILE) || errors.Is(err, unix.ENOBUFS) || errors.Is(err, unix.ENOMEM) {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			fmt.Fprintf(os.Stderr, "cordon supervisor: proxy port: %v\n", err)
			return
		}
		f, err := c.File()
		c.Close()
		if err != nil {
			continue // out of descriptors: the client sees its connection close
		}
		_, _, err = b.host.WriteMsgUnix([]byte("c:"+b.next()), unix.UnixRights(int(f.Fd())), nil)
		f.Close()
		if err != nil {
			// The host is gone: the session is ending.
			return
		}
	}
}
