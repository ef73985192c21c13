package sandbox

import (
	"errors"
	"maps"
	"net"
	"os"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/cordon-sandbox/cordon/egress"
	"github.com/cordon-sandbox/cordon/events"
)

// egressPair makes the datagram socketpair on which the supervisor hands
// the host every connection accepted on the session's proxy port. The
// host's end is owned by Go's poller, so an idle session holds no thread.
func egressPair() (mine *net.UnixConn, theirs *os.File, err error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, os.NewSyscallError("socketpair", err)
	}
	f := os.NewFile(uintptr(fds[0]), "egress")
	c, err := net.FileConn(f)
	f.Close()
	if err != nil {
		unix.Close(fds[1])
		return nil, nil, err
	}
	return c.(*net.UnixConn), os.NewFile(uintptr(fds[1]), "egress"), nil
}

// serveEgress receives proxy connections from the supervisor and serves
// each with the egress proxy until the session ends.
func (s *Session) serveEgress(c *net.UnixConn, cfg egress.Config) {
	defer c.Close()
	buf := make([]byte, 64)
	oob := make([]byte, unix.CmsgSpace(4))
	for {
		n, oobn, _, _, err := c.ReadMsgUnix(buf, oob)
		if err != nil || n == 0 {
			return // the supervisor is gone
		}
		conn, err := receivedConn(oob[:oobn])
		if err != nil {
			continue
		}
		call := strings.TrimPrefix(string(buf[:n]), "c:")
		cc := cfg
		cc.Call = func() string { return s.callOf(call) }
		go egress.Serve(s.ctx, conn, &cc)
	}
}

// receivedConn turns the one descriptor passed in oob into a connection.
func receivedConn(oob []byte) (net.Conn, error) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, err
	}
	var fds []int
	for i := range msgs {
		got, err := unix.ParseUnixRights(&msgs[i])
		if err == nil {
			fds = append(fds, got...)
		}
	}
	if len(fds) != 1 {
		for _, fd := range fds {
			unix.Close(fd)
		}
		return nil, errors.New("expected one descriptor")
	}
	f := os.NewFile(uintptr(fds[0]), "proxy-client")
	defer f.Close()
	return net.FileConn(f)
}

// callOf returns the call a proxy connection belongs to: the one the
// supervisor attributed it to, else the only call in progress, else none.
func (s *Session) callOf(call string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if call != "" {
		return call
	}
	if len(s.pending) == 1 {
		for c := range s.pending {
			return c
		}
	}
	return ""
}

// record publishes an event the host side of the session produced and
// adds a denial to its call's result.
func (s *Session) record(e *events.Event) {
	s.allowRemedy(e)
	s.bus.Publish(e)
	if e.Call == "" || (e.Kind != events.Deny && e.Kind != events.Limit) {
		return
	}
	s.mu.Lock()
	if pc := s.pending[e.Call]; pc != nil {
		pc.add(e)
	}
	s.mu.Unlock()
}

// maxCallDenials bounds the distinct denials kept for one call's result;
// repeats of a kept one are counted however many they are.
const maxCallDenials = 256

// add folds e into the call's denials.
func (pc *pending) add(e *events.Event) {
	if e.Layer == events.LayerLandlock && e.Detail["source"] == "audit" {
		pc.landlock++
	}
	k := e.Key()
	if f := pc.byKey[k]; f != nil {
		n, _ := f.Detail["count"].(int)
		f.Detail["count"] = max(n, 1) + 1
		return
	}
	if len(pc.denials) >= maxCallDenials {
		return
	}
	c := *e
	c.Detail = maps.Clone(e.Detail)
	if c.Detail == nil {
		c.Detail = map[string]any{}
	}
	if pc.byKey == nil {
		pc.byKey = map[string]*events.Event{}
	}
	pc.byKey[k] = &c
	pc.denials = append(pc.denials, &c)
}

// AllowHosts adds host patterns (the syntax of the policy's
// network.allow) to the session's egress allowlist for the rest of the
// session; ApplyGrants keeps them. The change applies to connections the
// proxy decides from then on; a connection already open is not affected.
func (s *Session) AllowHosts(hosts ...string) error {
	s.grantMu.Lock()
	defer s.grantMu.Unlock()
	extra := append(slices.Clone(s.extraHosts), hosts...)
	if err := s.setAllowlist(extra, s.grantedHosts); err != nil {
		return err
	}
	s.extraHosts = extra
	return nil
}

// setAllowlist makes the egress allowlist the policy's hosts, then extra,
// then granted. The caller holds grantMu.
func (s *Session) setAllowlist(extra, granted []string) error {
	hosts := slices.Concat(s.pol.Network.Allow, extra, granted)
	al, err := egress.ParseAllowlist(hosts, s.pol.Network.AllowPrivate)
	if err != nil {
		return &Error{Code: CodeInvalid, Message: err.Error()}
	}
	s.allow.Store(al)
	return nil
}

// AllowedHosts returns the session's egress allowlist.
func (s *Session) AllowedHosts() []string { return s.allow.Load().Hosts() }

// egressConfig is the proxy configuration of the session.
func (s *Session) egressConfig(o Options) egress.Config {
	return egress.Config{
		Session: s.id,
		Allow:   s.allow.Load,
		Resolve: o.Resolve,
		Emit:    s.record,
		Count:   o.CountEgress,
	}
}
