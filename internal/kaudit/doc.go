// Package kaudit reads Landlock's kernel audit records and turns them
// into Denials: which process was refused what, by which Landlock domain.
//
// # What the kernel writes
//
// When audit is enabled, Landlock (ABI 7, Linux 6.15+) writes an
// AUDIT_LANDLOCK_ACCESS record (type 1423) for a refused access,
//
//	domain=1d7f0b178 blockers=fs.write_file path="/etc/foo" dev="vda" ino=770097
//
// and an AUDIT_LANDLOCK_DOMAIN record (type 1424) the first time a domain
// shows in the log and again when it is freed:
//
//	domain=1d7f0b21e status=allocated mode=enforcing pid=31011 uid=2000000000 exe="/usr/bin/cordon" comm="exe"
//	domain=1d7f0b21e status=deallocated denials=1
//
// The records of one system call share an audit serial
// ("audit(1795908918.312:35)") with the AUDIT_SYSCALL record written at
// the call's exit (pid, ppid, syscall, comm, exe), AUDIT_PROCTITLE (argv)
// and AUDIT_EOE, which ends the event. [Reader] groups them by serial; see
// assemble.go for the order and the events that have no EOE.
//
// By default a domain logs only the denials of the program that created
// it, up to its next execve(2). The executor and the tools it runs are
// later programs: their denials are logged only if the domain was created
// with LANDLOCK_RESTRICT_SELF_LOG_NEW_EXEC_ON (ruleset.Options.LogNewExec).
//
// # Reading without disturbing the host
//
// Open does not register as the audit daemon: it subscribes to
// AUDIT_NLGRP_READLOG, the read-only multicast copy of every record, which
// needs CAP_AUDIT_READ. The kernel sends each record to the multicast
// group first and then to the registered daemon, if any, so a host's
// auditd keeps receiving everything and cordon reads a copy beside it.
// Without a daemon the records still reach the group (checked on Linux
// 6.18); the kernel then also prints each record to its own log (dmesg,
// rate-limited) and drops it. The kernel logs each subscription and
// unsubscription while audit is on (AUDIT_EVENT_LISTENER, type 1335), so
// a host's audit log shows when cordon started and stopped reading.
//
// Records are written only while auditing is enabled. If it is off, Open
// turns it on (AUDIT_SET with only the enabled bit in the mask), and the
// last Close turns it off again, unless someone else changed it or an
// audit daemon registered meanwhile (ErrNotRestored). "Last" counts every
// process that reads at the same time: they share the duty through flocks
// on two files under /run (share_linux.go), so one that closes does not
// turn auditing off under another, and the last removes the files; a
// process that died without closing leaves its record there for the next
// one to restore. If it is
// locked (enabled=2) it is on and left so. The failure mode, rate limit,
// backlog limit and backlog wait time are never changed. What enabling
// does to the host while it is on: every audit record that anything on
// the host produces (Landlock's, other LSMs', AUDIT_USER_* from PAM,
// AUDIT_BPF, NETFILTER_CFG, ...) is written and, without auditd, printed
// to the kernel log; and what cannot be undone by Close: the kernel
// remembers that audit was enabled once (audit_ever_enabled), and every
// task created afterwards carries a syscall audit context until reboot
// (a small cost per system call while audit is off). A process that dies
// without Close leaves auditing on until the next reader's last Close.
//
// Losses are counted, not hidden: the kernel's backlog (Status.Lost, when
// more than Status.BacklogLimit records wait for kauditd; Landlock's
// records never wait for room), the socket's buffer, where records wait
// while the consumer of Events is slow (Reader.Lost overflows), and what
// was still pending at Close (Reader.Lost dropped). A domain's
// deallocation record carries how many denials the kernel counted for it,
// logged or not.
//
// # Attribution
//
// PIDs in the records are in the initial PID namespace, not the
// session's. Paths are as the denied process saw them, from its own root
// (inside a session: the view's paths). The domain id names the session's
// Landlock domain; a tool that creates a nested domain gets denials under
// an id of its own, whose allocation record names the creating process.
//
// # Privileges
//
// Reading needs CAP_AUDIT_READ, and AUDIT_GET/AUDIT_SET need
// CAP_AUDIT_CONTROL from the initial user and PID namespaces; records are
// multicast in the initial network namespace only. A rootless process
// cannot read them at all, nor can one in a container (ErrNotPermitted).
// Linux only; elsewhere Open and ReadStatus return ErrNotSupported.
package kaudit
