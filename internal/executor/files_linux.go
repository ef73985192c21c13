package executor

import (
	"errors"
	"io"
	"os"
	"path"
	"sort"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/cordon-sandbox/cordon/internal/proto"
)

// File tools resolve every caller path with openat2(RESOLVE_BENEATH)
// relative to the workspace: the kernel refuses "..", absolute symlinks
// and any symlink that leads out (EXDEV), and magic links (/proc/self/fd)
// are refused outright. The host already rejected malformed paths; this
// is the check that cannot race with a symlink swapped in by a command.
const beneath = unix.RESOLVE_BENEATH | unix.RESOLVE_NO_MAGICLINKS

// rel turns a caller path into one relative to the workspace. An
// absolute path outside the workspace is kept absolute, which
// RESOLVE_BENEATH then refuses with EXDEV.
func (e *executor) rel(p string) string {
	if p == e.plan.Workspace {
		return "."
	}
	if r, ok := strings.CutPrefix(p, e.plan.Workspace+"/"); ok {
		p = r
	}
	if p == "" {
		return "."
	}
	return p
}

func (e *executor) openBeneath(op proto.Op, p string, flags uint64, mode uint64) (*os.File, *proto.CallError) {
	how := unix.OpenHow{Flags: flags | unix.O_CLOEXEC, Mode: mode, Resolve: beneath}
	r := e.rel(p)
	for {
		fd, err := unix.Openat2(int(e.ws.Fd()), r, &how)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, callError(op, p, err)
		}
		return os.NewFile(uintptr(fd), p), nil
	}
}

// callError maps a kernel refusal to the call's structured error.
func callError(op proto.Op, p string, err error) *proto.CallError {
	var errno unix.Errno
	if !errors.As(err, &errno) {
		return &proto.CallError{Code: proto.CodeFailed, Message: err.Error(), Op: string(op), Path: p}
	}
	ce := &proto.CallError{Errno: int(errno), Op: string(op), Path: p}
	switch errno {
	case unix.EXDEV:
		ce.Code, ce.Message = proto.CodeDenied, p+": resolves outside the workspace"
	case unix.EACCES, unix.EPERM:
		ce.Code, ce.Message = proto.CodeDenied, p+": permission denied by the sandbox"
	case unix.EROFS:
		ce.Code, ce.Message = proto.CodeDenied, p+": read-only in this session"
	case unix.ENOENT:
		ce.Code, ce.Message = proto.CodeNotFound, p+": no such file or directory"
	case unix.ENAMETOOLONG, unix.ELOOP, unix.EINVAL:
		ce.Code, ce.Message = proto.CodeInvalid, p+": "+errno.Error()
	default:
		ce.Code, ce.Message = proto.CodeFailed, p+": "+errno.Error()
	}
	return ce
}

// resolveDir checks that a command's working directory is a directory
// beneath the workspace and returns its path in the session.
func (e *executor) resolveDir(cwd string) (string, *proto.CallError) {
	if cwd == "" || cwd == "." {
		return e.plan.Workspace, nil
	}
	f, cerr := e.openBeneath(proto.OpExec, cwd, unix.O_PATH|unix.O_DIRECTORY, 0)
	if cerr != nil {
		return "", cerr
	}
	f.Close()
	return path.Join(e.plan.Workspace, e.rel(cwd)), nil
}

func (e *executor) readFile(req *proto.Request) *proto.Result {
	f, cerr := e.openBeneath(proto.OpRead, req.Path, unix.O_RDONLY|unix.O_NOCTTY, 0)
	if cerr != nil {
		return &proto.Result{Error: cerr}
	}
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return &proto.Result{Error: callError(proto.OpRead, req.Path, err)}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return &proto.Result{Error: &proto.CallError{Code: proto.CodeInvalid, Message: req.Path + ": not a regular file", Op: string(proto.OpRead), Path: req.Path}}
	}
	limit := req.Limit
	if limit <= 0 || (e.plan.Limits.FileReadBytes > 0 && limit > e.plan.Limits.FileReadBytes) {
		limit = e.plan.Limits.FileReadBytes
	}
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return &proto.Result{Error: callError(proto.OpRead, req.Path, err)}
	}
	res := &proto.Result{}
	if int64(len(data)) > limit {
		data, res.Truncated, res.Limit = data[:limit], true, "output"
	}
	res.Data = data
	return res
}

func (e *executor) writeFile(req *proto.Request) *proto.Result {
	if max := e.plan.Limits.FileWriteBytes; max > 0 && int64(len(req.Data)) > max {
		return invalid("write_file: content exceeds the session's write limit")
	}
	if cerr := e.mkdirParents(req.Path); cerr != nil {
		return &proto.Result{Error: cerr}
	}
	flags := uint64(unix.O_WRONLY | unix.O_CREAT | unix.O_NOFOLLOW | unix.O_NOCTTY)
	if req.Append {
		flags |= unix.O_APPEND
	} else {
		flags |= unix.O_TRUNC
	}
	mode := uint64(req.Mode & 0o777)
	if mode == 0 {
		mode = 0o644
	}
	f, cerr := e.openBeneath(proto.OpWrite, req.Path, flags, mode)
	if cerr != nil {
		return &proto.Result{Error: cerr}
	}
	defer f.Close()
	if _, err := f.Write(req.Data); err != nil {
		return &proto.Result{Error: callError(proto.OpWrite, req.Path, err)}
	}
	if err := f.Close(); err != nil {
		return &proto.Result{Error: callError(proto.OpWrite, req.Path, err)}
	}
	return &proto.Result{}
}

// mkdirParents creates the missing parent directories of p, each one
// beneath the workspace.
func (e *executor) mkdirParents(p string) *proto.CallError {
	dir := path.Dir(e.rel(p))
	if dir == "." || dir == "/" {
		return nil
	}
	cur := ""
	for _, part := range strings.Split(dir, "/") {
		cur = path.Join(cur, part)
		f, cerr := e.openBeneath(proto.OpWrite, cur, unix.O_PATH|unix.O_DIRECTORY, 0)
		if cerr == nil {
			f.Close()
			continue
		}
		if cerr.Code != proto.CodeNotFound {
			return cerr
		}
		parent, pcerr := e.openBeneath(proto.OpWrite, path.Dir(cur), unix.O_PATH|unix.O_DIRECTORY, 0)
		if pcerr != nil {
			return pcerr
		}
		err := unix.Mkdirat(int(parent.Fd()), part, 0o755)
		parent.Close()
		if err != nil && err != unix.EEXIST {
			return callError(proto.OpWrite, cur, err)
		}
	}
	return nil
}

func (e *executor) listDir(req *proto.Request) *proto.Result {
	f, cerr := e.openBeneath(proto.OpList, req.Path, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if cerr != nil {
		return &proto.Result{Error: cerr}
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return &proto.Result{Error: callError(proto.OpList, req.Path, err)}
	}
	sort.Strings(names)
	res := &proto.Result{Entries: make([]proto.FileInfo, 0, len(names))}
	for _, name := range names {
		// Relative to the directory's descriptor: a path would be
		// resolved again, from the executor's working directory.
		var st unix.Stat_t
		if err := unix.Fstatat(int(f.Fd()), name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			continue // removed while listing
		}
		res.Entries = append(res.Entries, statInfo(name, &st))
	}
	return res
}

func (e *executor) stat(req *proto.Request) *proto.Result {
	f, cerr := e.openBeneath(proto.OpStat, req.Path, unix.O_PATH|unix.O_NOFOLLOW, 0)
	if cerr != nil {
		return &proto.Result{Error: cerr}
	}
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstatat(int(f.Fd()), "", &st, unix.AT_EMPTY_PATH); err != nil {
		return &proto.Result{Error: callError(proto.OpStat, req.Path, err)}
	}
	info := statInfo(path.Base(e.rel(req.Path)), &st)
	if info.Type == "symlink" {
		buf := make([]byte, unix.PathMax)
		if n, err := unix.Readlinkat(int(f.Fd()), "", buf); err == nil {
			info.Target = string(buf[:n])
		}
	}
	return &proto.Result{Info: &info}
}

func statInfo(name string, st *unix.Stat_t) proto.FileInfo {
	t := "other"
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		t = "file"
	case unix.S_IFDIR:
		t = "dir"
	case unix.S_IFLNK:
		t = "symlink"
	}
	return proto.FileInfo{Name: name, Type: t, Size: st.Size, Mode: st.Mode & 0o7777, ModTime: st.Mtim.Sec}
}
