package kaudit

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// This file is the raw layer: NETLINK_AUDIT sockets, AUDIT_GET/AUDIT_SET
// and receiving one record. It returns *os.SyscallError and knows nothing
// of Landlock.

// auditStatus is struct audit_status (include/uapi/linux/audit.h). The
// kernel copies min(len, sizeof) bytes both ways, so a shorter or longer
// struct on either side is fine.
type auditStatus struct {
	Mask                  uint32
	Enabled               uint32
	Failure               uint32
	PID                   uint32
	RateLimit             uint32
	BacklogLimit          uint32
	Lost                  uint32
	Backlog               uint32
	FeatureBitmap         uint32 // also "version"
	BacklogWaitTime       uint32
	BacklogWaitTimeActual uint32
}

const sizeofAuditStatus = int(unsafe.Sizeof(auditStatus{}))

// recvBufBytes is the multicast socket's receive buffer. The kernel drops
// a record for a listener whose buffer is full and reports ENOBUFS on its
// next receive; a burst of denials must fit while the reader catches up.
const recvBufBytes = 4 << 20

// maxRecord bounds one netlink message: the kernel's audit records are
// at most MAX_AUDIT_MESSAGE_LENGTH (8970) bytes.
const maxRecord = 16 << 10

// openAudit opens a NETLINK_AUDIT socket, close-on-exec, bound to groups
// (a bit mask; 0 for a control socket).
func openAudit(groups uint32) (int, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_AUDIT)
	if err != nil {
		return -1, os.NewSyscallError("socket(NETLINK_AUDIT)", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: groups}); err != nil {
		unix.Close(fd)
		return -1, os.NewSyscallError("bind(NETLINK_AUDIT)", err)
	}
	return fd, nil
}

// openReadlog opens a socket subscribed to AUDIT_NLGRP_READLOG, the
// kernel's read-only copy of every audit record (needs CAP_AUDIT_READ in
// the initial user namespace). The socket is non-blocking so that the Go
// poller can wait on it and Close can interrupt a receive.
func openReadlog() (int, error) {
	fd, err := openAudit(1 << (unix.AUDIT_NLGRP_READLOG - 1))
	if err != nil {
		return -1, err
	}
	// Root may exceed net.core.rmem_max; anyone else gets at most that.
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, recvBufBytes); err != nil {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, recvBufBytes); err != nil {
			unix.Close(fd)
			return -1, os.NewSyscallError("setsockopt(SO_RCVBUF)", err)
		}
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return -1, os.NewSyscallError("fcntl(O_NONBLOCK)", err)
	}
	return fd, nil
}

// request sends one audit control message on fd (a control socket) with
// NLM_F_ACK and returns the kernel's answer of type want, if want is not
// 0, after the acknowledgement. AUDIT_GET's reply and the acknowledgement
// may come in either order: the reply is sent from a kernel thread.
func request(fd int, typ uint16, payload []byte, want uint16, seq uint32) ([]byte, error) {
	msg := make([]byte, unix.NLMSG_HDRLEN+len(payload))
	binary.NativeEndian.PutUint32(msg[0:4], uint32(len(msg)))
	binary.NativeEndian.PutUint16(msg[4:6], typ)
	binary.NativeEndian.PutUint16(msg[6:8], unix.NLM_F_REQUEST|unix.NLM_F_ACK)
	binary.NativeEndian.PutUint32(msg[8:12], seq)
	copy(msg[unix.NLMSG_HDRLEN:], payload)
	name := fmt.Sprintf("sendto(NETLINK_AUDIT, %d)", typ)
	for {
		err := unix.Sendto(fd, msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK})
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, os.NewSyscallError(name, err)
		}
		break
	}
	var reply []byte
	acked := false
	buf := make([]byte, maxRecord)
	for !acked || (want != 0 && reply == nil) {
		n, from, err := unix.Recvfrom(fd, buf, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, os.NewSyscallError("recvfrom(NETLINK_AUDIT)", err)
		}
		if sa, ok := from.(*unix.SockaddrNetlink); !ok || sa.Pid != 0 {
			continue // only the kernel answers
		}
		for b := buf[:n]; len(b) >= unix.NLMSG_HDRLEN; {
			l := int(binary.NativeEndian.Uint32(b[0:4]))
			if l < unix.NLMSG_HDRLEN || l > len(b) {
				return nil, errors.New("malformed netlink reply")
			}
			mtyp := binary.NativeEndian.Uint16(b[4:6])
			mseq := binary.NativeEndian.Uint32(b[8:12])
			data := b[unix.NLMSG_HDRLEN:l]
			if next := (l + unix.NLMSG_ALIGNTO - 1) &^ (unix.NLMSG_ALIGNTO - 1); next < len(b) {
				b = b[next:]
			} else {
				b = nil
			}
			if mseq != seq {
				continue
			}
			switch mtyp {
			case unix.NLMSG_ERROR:
				if len(data) < 4 {
					return nil, errors.New("short netlink acknowledgement")
				}
				if e := int32(binary.NativeEndian.Uint32(data[:4])); e != 0 {
					return nil, os.NewSyscallError(name, unix.Errno(-e))
				}
				acked = true
			case want:
				reply = append([]byte(nil), data...)
			}
		}
	}
	return reply, nil
}

// getStatus is AUDIT_GET.
func getStatus(fd int, seq uint32) (auditStatus, error) {
	b, err := request(fd, unix.AUDIT_GET, nil, unix.AUDIT_GET, seq)
	if err != nil {
		return auditStatus{}, err
	}
	var s auditStatus
	copy(unsafe.Slice((*byte)(unsafe.Pointer(&s)), sizeofAuditStatus), b)
	return s, nil
}

// setEnabled is AUDIT_SET with only AUDIT_STATUS_ENABLED in the mask:
// nothing else (failure mode, rate and backlog limits, the daemon's pid)
// is touched.
func setEnabled(fd int, enabled uint32, seq uint32) error {
	s := auditStatus{Mask: unix.AUDIT_STATUS_ENABLED, Enabled: enabled}
	b := unsafe.Slice((*byte)(unsafe.Pointer(&s)), sizeofAuditStatus)
	_, err := request(fd, unix.AUDIT_SET, b, 0, seq)
	return err
}

// receive reads one record from the READLOG socket fd: its type and its
// text. The kernel puts one record in each datagram. Its multicast copy
// has a correct nlmsg_len (the unicast copy to auditd counts the payload
// only, a quirk auditd relies on), but the datagram's length is what is
// trusted either way; a trailing NUL is dropped. ok is false for a
// datagram that is not a record from the kernel.
func receive(fd int, buf []byte) (typ uint16, text []byte, ok bool, err error) {
	n, _, _, from, err := unix.Recvmsg(fd, buf, nil, 0)
	if err != nil {
		return 0, nil, false, err
	}
	if sa, isNL := from.(*unix.SockaddrNetlink); !isNL || sa.Pid != 0 {
		return 0, nil, false, nil
	}
	if n < unix.NLMSG_HDRLEN {
		return 0, nil, false, nil
	}
	typ = binary.NativeEndian.Uint16(buf[4:6])
	text = buf[unix.NLMSG_HDRLEN:n]
	for len(text) > 0 && text[len(text)-1] == 0 {
		text = text[:len(text)-1]
	}
	return typ, text, true, nil
}
