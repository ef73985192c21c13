package supervisor

import (
	"os"
	"strconv"
	"strings"
)

// noAuditSession is the audit login uid and session id of a task that
// never had one: (uid_t)-1.
const noAuditSession = 4294967295

// auditSession gives the calling thread an audit session of its own and
// returns its id, or 0 when it cannot. The kernel allocates a new session
// id whenever a task sets its audit login uid; every task it creates
// afterwards inherits both, and no task of the session can change them
// (that needs CAP_AUDIT_CONTROL in the initial user namespace once the
// login uid is set). So every kernel audit record of the executor and of
// each tool it runs carries this ses=, which is how the host tells this
// session's Landlock denials from everyone else's.
//
// Call it on a locked thread, the one that starts the executor: the
// login uid belongs to a thread. Setting it needs no privilege while it
// is unset, which is how a daemon started by init finds it; a host
// process that runs in a login session (a login uid set by pam_loginuid)
// cannot, and its sessions' records are then attributed by pid
// namespace instead. uid is the executor's user inside the session,
// which the records show as its host uid (auid=). The kernel logs the
// change (AUDIT_LOGIN) while auditing is on.
func auditSession(uid int) uint32 {
	if err := os.WriteFile("/proc/thread-self/loginuid", []byte(strconv.Itoa(uid)), 0); err != nil {
		return 0
	}
	b, err := os.ReadFile("/proc/thread-self/sessionid")
	if err != nil {
		return 0
	}
	n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 32)
	if err != nil || n == noAuditSession {
		return 0
	}
	return uint32(n)
}
