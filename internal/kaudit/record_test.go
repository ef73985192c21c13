package kaudit

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the parser's output")

// readFixture parses a file of audit log lines.
func readFixture(t testing.TB, name string) []record {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var rs []record
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		r, err := parseLogLine(sc.Text())
		if err != nil {
			t.Fatalf("%s: %q: %v", name, sc.Text(), err)
		}
		rs = append(rs, r)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return rs
}

// assemble runs records through an assembler as if they had all
// arrived at once, then flushes it.
func assemble(rs []record) []Event {
	a := newAssembler(time.Second, 1024)
	now := time.Unix(0, 0)
	var out []Event
	for _, r := range rs {
		out = append(out, a.add(r, now)...)
	}
	return append(out, a.flush()...)
}

// summary is one line per Event, for the golden file.
func summary(e Event) string {
	if d := e.Domain; d != nil {
		return fmt.Sprintf("domain serial=%d id=%s status=%s mode=%s pid=%d uid=%d exe=%q comm=%q denials=%d time=%s",
			d.Serial, d.ID, d.Status, d.Mode, d.PID, d.UID, d.Exe, d.Comm, d.Denials, d.Time.UTC().Format(time.RFC3339Nano))
	}
	d := e.Denial
	s := fmt.Sprintf("denial serial=%d domain=%s ops=%s blockers=%s path=%q dev=%q ino=%d",
		d.Serial, d.Domain, strings.Join(d.Ops(), ","), strings.Join(d.Blockers, ","), d.Path, d.Dev, d.Ino)
	if d.IoctlCmd != "" {
		s += " ioctlcmd=" + d.IoctlCmd
	}
	if d.Addr != "" {
		s += fmt.Sprintf(" addr=%s port=%d", d.Addr, d.Port)
	}
	if d.TargetPID != 0 {
		s += fmt.Sprintf(" target=%d/%s", d.TargetPID, d.TargetComm)
	}
	if d.HasSyscall {
		s += fmt.Sprintf(" auid=%d ses=%d", d.LoginUID, d.AuditSession)
		s += fmt.Sprintf(" pid=%d ppid=%d uid=%d syscall=%d/%s arch=%x exit=%d comm=%q exe=%q argv0=%q",
			d.PID, d.PPID, d.UID, d.Syscall, d.SyscallName, d.Arch, d.Exit, d.Comm, d.Exe, first(d.Argv))
	}
	return s
}

func first(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}

// TestFixture runs records captured on Linux 6.18 (Landlock ABI 7) from
// the READLOG multicast group, by a child that restricted itself with
// LOG_NEW_EXEC_ON and then ran a shell script trying one denied access
// of each kind, through the parser and the assembler.
func TestFixture(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		// The golden file has amd64 syscall names.
		t.Skip("the fixture was captured on amd64; syscall names differ elsewhere")
	}
	events := assemble(readFixture(t, "records.log"))
	var lines []string
	for _, e := range events {
		lines = append(lines, summary(e))
	}
	got := strings.Join(lines, "\n") + "\n"
	golden := filepath.Join("testdata", "records.golden")
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("events differ from %s (go test -run TestFixture -update rewrites it):\n%s", golden, got)
	}

	// The facts the golden file must show, stated once more by hand.
	var denials []*Denial
	var domains []*Domain
	for _, e := range events {
		if e.Denial != nil {
			denials = append(denials, e.Denial)
		} else {
			domains = append(domains, e.Domain)
		}
	}
	if len(domains) != 2 || domains[0].Status != "allocated" || domains[1].Status != "deallocated" {
		t.Fatalf("domains: %+v", domains)
	}
	if events[0].Domain == nil || events[0].Domain.ID != "1d7f0b178" || events[0].Domain.PID != 25560 {
		t.Errorf("the first event is not the domain's allocation: %s", summary(events[0]))
	}
	// The kernel counts every denial of the domain; all were logged.
	if uint64(len(denials)) != domains[1].Denials {
		t.Errorf("%d denials, the kernel counted %d", len(denials), domains[1].Denials)
	}
	d := denials[0]
	if d.PID != 25560 || d.PPID != 25553 || d.Comm != "sh" || d.Exe != "/usr/bin/dash" ||
		d.SyscallName != "openat" || d.Exit != -13 || d.Path != "/var/tmp/explore2542143895" ||
		!reflect.DeepEqual(d.Blockers, []string{"fs.make_reg"}) || d.Argv[0] != "sh" || d.Argv[1] != "-c" {
		t.Errorf("first denial: %s", summary(Event{Denial: d}))
	}
	byOp := map[string]*Denial{}
	for _, d := range denials {
		byOp[strings.Join(d.Blockers, ",")] = d
	}
	if d := byOp["fs.make_reg"]; d == nil {
		t.Error("no fs.make_reg denial")
	}
	for path, ok := range map[string]bool{
		"/var/tmp/explore2542143895/with space é": false, // hex in the record
		"\x00cordon-kaudit-explore":               false, // abstract socket, hex
	} {
		for _, d := range denials {
			ok = ok || d.Path == path
		}
		if !ok {
			t.Errorf("no denial with path %q", path)
		}
	}
	if d := byOp["net.connect_tcp"]; d == nil || d.Addr != "127.0.0.1" || d.Port != 41775 {
		t.Errorf("connect: %+v", d)
	}
	if d := byOp["scope.signal"]; d == nil || d.TargetPID != 25553 || d.TargetComm != "kaudit.test" || d.SyscallName != "kill" {
		t.Errorf("signal: %+v", d)
	}
	// A rename: two objects refused in one system call.
	var rename []*Denial
	for _, d := range denials {
		if d.Serial == 44 {
			rename = append(rename, d)
		}
	}
	if len(rename) != 2 || rename[0].SyscallName != "renameat2" || rename[1].PID != rename[0].PID ||
		!reflect.DeepEqual(rename[1].Ops(), []string{"fs.make_reg", "fs.refer"}) {
		t.Errorf("rename: %v", rename)
	}
}

func TestParseRecord(t *testing.T) {
	r, err := parseRecord(typeLandlockAccess,
		`audit(1795908918.316:42): domain=1d7f0b178 blockers=fs.make_reg path=2F746D702F6120C3A9 dev="vda" ino=770098`)
	if err != nil {
		t.Fatal(err)
	}
	if r.Serial != 42 || !r.Time.Equal(time.Unix(1795908918, 316e6)) {
		t.Errorf("stamp: %d %v", r.Serial, r.Time)
	}
	for key, want := range map[string]string{
		"domain": "1d7f0b178", "blockers": "fs.make_reg", "path": "/tmp/a é", "dev": "vda", "ino": "770098", "missing": "",
	} {
		if got := r.get(key); got != want {
			t.Errorf("%s = %q, want %q", key, got, want)
		}
	}

	// Only untrusted fields are hex-decoded; placeholders stay.
	r, _ = parseRecord(typeSyscall, `audit(1.000:1): arch=c000003e a0=ABCD comm=6162 exe=(null) key=(null) msg='op=x res=1' name=?`)
	for key, want := range map[string]string{
		"arch": "c000003e", "a0": "ABCD", "comm": "ab", "exe": "(null)", "msg": "op=x res=1", "name": "?",
	} {
		if got := r.get(key); got != want {
			t.Errorf("%s = %q, want %q", key, got, want)
		}
	}

	for _, bad := range []string{
		"", "audit(", "audit(1.0:1", "audit(x.000:1): a=b", "audit(1.000): a=b", "audit(1.000:x): a=b",
		"audit(1.1000:1): a=b", "audit(-1.000:1): a=b", "domain=1",
	} {
		if _, err := parseRecord(typeLandlockAccess, bad); err == nil {
			t.Errorf("parseRecord(%q) succeeded", bad)
		}
	}
}

func TestParseFields(t *testing.T) {
	got := parseFields(` a=1  word b="x y" c='p q' d=" e= =f g=end` + "\x1dUID=\"root\"")
	want := []field{{"a", "1"}, {"b", `"x y"`}, {"c", `'p q'`}, {"d", `" e= =f g=end`}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("parseFields = %q, want %q", got, want)
	}
}

func TestParseLogLine(t *testing.T) {
	for _, line := range []string{
		`type=1423 msg=audit(1795908918.316:42): domain=1d7 blockers=fs.read_file`,
		// As the kernel prints it to its log without an audit daemon.
		`type=1423 audit(1795908918.316:42): domain=1d7 blockers=fs.read_file`,
	} {
		r, err := parseLogLine(line)
		if err != nil || r.Type != typeLandlockAccess || r.Serial != 42 || r.get("blockers") != "fs.read_file" {
			t.Errorf("parseLogLine(%q) = %+v, %v", line, r, err)
		}
	}
	for _, bad := range []string{"", "type=", "type=LANDLOCK_ACCESS msg=audit(1.0:1): a=b", "type=99999 audit(1.0:1):"} {
		if _, err := parseLogLine(bad); err == nil {
			t.Errorf("parseLogLine(%q) succeeded", bad)
		}
	}
}

func TestOp(t *testing.T) {
	for blocker, op := range map[string]string{
		"fs.write_file": "fs.write", "fs.truncate": "fs.write",
		"fs.read_file": "fs.read", "fs.read_dir": "fs.read",
		"fs.execute":  "fs.exec",
		"fs.make_reg": "fs.make_reg", "fs.make_dir": "fs.make_dir", "fs.remove_file": "fs.remove_file",
		"fs.refer": "fs.refer", "fs.ioctl_dev": "fs.ioctl_dev",
		"net.bind_tcp": "net.bind_tcp", "net.connect_tcp": "net.connect_tcp",
		"scope.signal": "scope.signal", "scope.abstract_unix_socket": "scope.abstract_unix_socket",
		"fs.something_new": "fs.something_new",
	} {
		if got := Op(blocker); got != op {
			t.Errorf("Op(%q) = %q, want %q", blocker, got, op)
		}
	}
	d := Denial{Blockers: []string{"fs.write_file", "fs.truncate", "fs.read_file"}}
	if got := d.Ops(); !reflect.DeepEqual(got, []string{"fs.write", "fs.read"}) {
		t.Errorf("Ops = %q", got)
	}
}

func mustRecord(t *testing.T, line string) record {
	t.Helper()
	r, err := parseLogLine(line)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestAssembler(t *testing.T) {
	acc := func(serial int, path string) string {
		return fmt.Sprintf(`type=1423 msg=audit(100.000:%d): domain=a blockers=fs.read_file path="%s" dev="vda" ino=1`, serial, path)
	}
	sys := func(serial, pid int) string {
		return fmt.Sprintf(`type=1300 msg=audit(100.000:%d): arch=c000003e syscall=257 success=no exit=-13 ppid=1 pid=%d auid=1000 uid=0 ses=%d comm="cat" exe="/usr/bin/cat"`, serial, pid, pid+1)
	}
	eoe := func(serial int) string { return fmt.Sprintf(`type=1320 msg=audit(100.000:%d): `, serial) }
	t0 := time.Unix(1000, 0)

	t.Run("interleaved", func(t *testing.T) {
		a := newAssembler(time.Second, 16)
		var got []Event
		for _, l := range []string{acc(1, "/a"), acc(2, "/b"), sys(2, 20), eoe(2), sys(1, 10), eoe(1)} {
			got = append(got, a.add(mustRecord(t, l), t0)...)
		}
		if len(got) != 2 || got[0].Denial.Path != "/b" || got[0].Denial.PID != 20 || got[1].Denial.Path != "/a" || got[1].Denial.PID != 10 {
			t.Fatalf("got %v", got)
		}
		if d := got[0].Denial; d.LoginUID != 1000 || d.AuditSession != 21 {
			t.Errorf("auid %d ses %d", d.LoginUID, d.AuditSession)
		}
		if _, ok := a.deadline(); ok {
			t.Error("a group is still pending")
		}
	})
	t.Run("no syscall context", func(t *testing.T) {
		a := newAssembler(time.Second, 16)
		if got := a.add(mustRecord(t, acc(1, "/a")), t0); len(got) != 0 {
			t.Fatalf("emitted early: %v", got)
		}
		if dl, ok := a.deadline(); !ok || !dl.Equal(t0.Add(time.Second)) {
			t.Errorf("deadline %v %v", dl, ok)
		}
		if got := a.expire(t0.Add(999 * time.Millisecond)); len(got) != 0 {
			t.Fatalf("expired early: %v", got)
		}
		got := a.expire(t0.Add(time.Second))
		if len(got) != 1 || got[0].Denial.HasSyscall || got[0].Denial.PID != 0 || got[0].Denial.Path != "/a" {
			t.Errorf("got %v", got)
		}
		if d := got[0].Denial; d.LoginUID != 0 || d.AuditSession != 0 {
			t.Errorf("auid %d ses %d without a syscall record", d.LoginUID, d.AuditSession)
		}
		// A late EOE for it is ignored.
		if got := a.add(mustRecord(t, eoe(1)), t0); len(got) != 0 {
			t.Errorf("late EOE: %v", got)
		}
	})
	t.Run("expiry skips completed groups", func(t *testing.T) {
		a := newAssembler(time.Second, 16)
		a.add(mustRecord(t, acc(1, "/a")), t0)
		a.add(mustRecord(t, acc(2, "/b")), t0.Add(900*time.Millisecond))
		a.add(mustRecord(t, eoe(1)), t0)
		if got := a.expire(t0.Add(1100 * time.Millisecond)); len(got) != 0 {
			t.Errorf("expired the young group: %v", got)
		}
		if got := a.expire(t0.Add(1900 * time.Millisecond)); len(got) != 1 || got[0].Denial.Path != "/b" {
			t.Errorf("got %v", got)
		}
	})
	t.Run("unrelated records", func(t *testing.T) {
		a := newAssembler(time.Second, 16)
		for _, l := range []string{sys(5, 1), eoe(5), `type=1305 msg=audit(100.000:6): op=set audit_enabled=1`} {
			if got := a.add(mustRecord(t, l), t0); len(got) != 0 {
				t.Errorf("%q emitted %v", l, got)
			}
		}
		if len(a.pending) != 0 {
			t.Errorf("holds %d groups", len(a.pending))
		}
	})
	t.Run("deallocation alone", func(t *testing.T) {
		a := newAssembler(time.Second, 16)
		got := a.add(mustRecord(t, `type=1424 msg=audit(100.000:7): domain=a status=deallocated denials=3`), t0)
		if len(got) != 1 || got[0].Domain == nil || got[0].Domain.Denials != 3 || got[0].Domain.Status != "deallocated" {
			t.Errorf("got %v", got)
		}
	})
	t.Run("bounded", func(t *testing.T) {
		a := newAssembler(time.Second, 4)
		var got []Event
		for i := 1; i <= 10; i++ {
			got = append(got, a.add(mustRecord(t, acc(i, fmt.Sprint("/", i))), t0)...)
		}
		if len(a.pending) != 4 || len(got) != 6 || got[0].Denial.Path != "/1" {
			t.Errorf("pending %d, emitted %d", len(a.pending), len(got))
		}
		for i := 100; i < 200; i++ {
			a.add(mustRecord(t, acc(i, "/x")), t0)
			a.add(mustRecord(t, eoe(i)), t0)
		}
		if len(a.order) > 2*4+1 {
			t.Errorf("order grew to %d", len(a.order))
		}
		for i := 0; i < maxGroupRecords+10; i++ {
			a.add(mustRecord(t, acc(300, "/y")), t0)
		}
		if n := len(a.pending[300].records); n != maxGroupRecords {
			t.Errorf("group holds %d records", n)
		}
	})
}
