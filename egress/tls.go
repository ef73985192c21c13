package egress

import (
	"bufio"
	"errors"
	"fmt"
	"io"
)

// TLS record and handshake constants (RFC 8446, RFC 6066).
const (
	recordHandshake     = 0x16
	handshakeHello      = 0x01 // client_hello
	extensionServerName = 0x0000
	nameTypeHostName    = 0x00

	recordHeaderLen = 5
	maxRecordLen    = 1 << 14 // a plaintext record's payload
	// maxHelloLen bounds the ClientHello the proxy reads before relaying.
	// Real ones are a few KiB (post-quantum key shares included).
	maxHelloLen = 64 << 10
	maxHostLen  = 253
)

// errNotTLS says that the first bytes are not a TLS handshake record.
var errNotTLS = errors.New("not a TLS handshake record")

// looksLikeTLS reports whether a record header is a TLS handshake record:
// content type handshake, protocol major version 3, a payload length a
// ClientHello record can have.
func looksLikeTLS(h []byte) bool {
	if len(h) < recordHeaderLen || h[0] != recordHandshake || h[1] != 3 {
		return false
	}
	n := int(h[3])<<8 | int(h[4])
	return n > 0 && n <= maxRecordLen
}

// readClientHello reads the TLS ClientHello at the start of r and returns
// every byte it consumed (to be relayed as they are) and the server name
// from its SNI extension ("" when there is none). The hello may span
// several records. It returns errNotTLS, without consuming anything, when
// the first record header is not a TLS handshake record; any other error
// means the bytes claim to be TLS but are not a well-formed ClientHello.
func readClientHello(r *bufio.Reader) (raw []byte, sni string, err error) {
	h, err := r.Peek(recordHeaderLen)
	if err != nil {
		return nil, "", fmt.Errorf("reading TLS record header: %w", err)
	}
	if !looksLikeTLS(h) {
		return nil, "", errNotTLS
	}
	var msg []byte // the handshake message, reassembled from records
	for {
		var hdr [recordHeaderLen]byte
		n, err := io.ReadFull(r, hdr[:])
		raw = append(raw, hdr[:n]...)
		if err != nil {
			return raw, "", fmt.Errorf("reading TLS record header: %w", err)
		}
		if !looksLikeTLS(hdr[:]) {
			return raw, "", errors.New("a ClientHello record is followed by one that is not a handshake record")
		}
		payload := make([]byte, int(hdr[3])<<8|int(hdr[4]))
		n, err = io.ReadFull(r, payload)
		raw = append(raw, payload[:n]...)
		if err != nil {
			return raw, "", fmt.Errorf("reading TLS record: %w", err)
		}
		msg = append(msg, payload...)
		if len(msg) < 4 {
			continue
		}
		if msg[0] != handshakeHello {
			return raw, "", fmt.Errorf("first handshake message has type %d, not ClientHello", msg[0])
		}
		size := int(msg[1])<<16 | int(msg[2])<<8 | int(msg[3])
		if size > maxHelloLen {
			return raw, "", fmt.Errorf("ClientHello of %d bytes is larger than %d", size, maxHelloLen)
		}
		if len(msg)-4 >= size {
			sni, err := parseClientHello(msg[4 : 4+size])
			return raw, sni, err
		}
	}
}

// parseClientHello returns the host name in the SNI extension of a
// ClientHello body (the handshake message without its 4-byte header), or
// "" when it has none. A repeated SNI extension, a server name list with
// other than one host name, a name that is empty, longer than 253 bytes
// or not printable ASCII, and any length that does not add up are errors.
func parseClientHello(b []byte) (string, error) {
	hello := cursor(b)
	var random, session, suites, compression, exts cursor
	if !hello.skip(2) || // legacy_version
		!hello.read(32, &random) ||
		!hello.vector8(&session) ||
		!hello.vector16(&suites) ||
		!hello.vector8(&compression) {
		return "", errors.New("truncated ClientHello")
	}
	if len(session) > 32 || len(suites) == 0 || len(suites)%2 != 0 || len(compression) == 0 {
		return "", errors.New("malformed ClientHello")
	}
	if len(hello) == 0 {
		return "", nil // no extensions at all
	}
	if !hello.vector16(&exts) || len(hello) != 0 {
		return "", errors.New("malformed ClientHello extensions")
	}
	sni, seen := "", false
	for len(exts) > 0 {
		var typ int
		var data cursor
		if !exts.uint16(&typ) || !exts.vector16(&data) {
			return "", errors.New("truncated ClientHello extension")
		}
		if typ != extensionServerName {
			continue
		}
		if seen {
			return "", errors.New("more than one server_name extension")
		}
		seen = true
		name, err := parseServerName(data)
		if err != nil {
			return "", err
		}
		sni = name
	}
	return sni, nil
}

// parseServerName parses the data of a server_name extension: a list
// holding exactly one host_name.
func parseServerName(data cursor) (string, error) {
	var list, name cursor
	var typ int
	if !data.vector16(&list) || len(data) != 0 || len(list) == 0 {
		return "", errors.New("malformed server_name extension")
	}
	if !list.uint8(&typ) || !list.vector16(&name) {
		return "", errors.New("truncated server_name entry")
	}
	switch {
	case typ != nameTypeHostName:
		return "", fmt.Errorf("server_name entry of unknown type %d", typ)
	case len(list) != 0:
		return "", errors.New("server_name list with more than one entry")
	case len(name) == 0 || len(name) > maxHostLen+1: // a trailing dot may follow 253 bytes
		return "", errors.New("server name is empty or too long")
	}
	for _, c := range name {
		if c <= ' ' || c >= 0x7f {
			return "", errors.New("server name has a byte that is not printable ASCII")
		}
	}
	return string(name), nil
}

// cursor reads big-endian TLS structures from the front of a byte slice.
// Every method reports false, consuming nothing, when the data is short.
type cursor []byte

func (c *cursor) skip(n int) bool {
	if len(*c) < n {
		return false
	}
	*c = (*c)[n:]
	return true
}

func (c *cursor) read(n int, out *cursor) bool {
	if len(*c) < n {
		return false
	}
	*out = (*c)[:n]
	*c = (*c)[n:]
	return true
}

func (c *cursor) uint8(out *int) bool {
	if len(*c) < 1 {
		return false
	}
	*out = int((*c)[0])
	*c = (*c)[1:]
	return true
}

func (c *cursor) uint16(out *int) bool {
	if len(*c) < 2 {
		return false
	}
	*out = int((*c)[0])<<8 | int((*c)[1])
	*c = (*c)[2:]
	return true
}

// vector8 reads a vector with a one-byte length prefix.
func (c *cursor) vector8(out *cursor) bool {
	rest, n := *c, 0
	if !rest.uint8(&n) || !rest.read(n, out) {
		return false
	}
	*c = rest
	return true
}

// vector16 reads a vector with a two-byte length prefix.
func (c *cursor) vector16(out *cursor) bool {
	rest, n := *c, 0
	if !rest.uint16(&n) || !rest.read(n, out) {
		return false
	}
	*c = rest
	return true
}
