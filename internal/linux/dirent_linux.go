package linux

import (
	"encoding/binary"
	"os"

	"golang.org/x/sys/unix"
)

// Dirent is a directory entry as getdents64 reports it: the name and the
// type (unix.DT_DIR, DT_REG, DT_LNK, ...; DT_UNKNOWN where the filesystem
// does not say), with no stat of the entry.
type Dirent struct {
	Name string
	Type uint8
}

// ReadDir returns the entries of the directory open at fd, "." and ".."
// left out, in the order the kernel gives them. name is for errors.
func ReadDir(fd int, name string) ([]Dirent, error) {
	var out []Dirent
	buf := make([]byte, 8192)
	for {
		n, err := unix.Getdents(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, &os.PathError{Op: "getdents64", Path: name, Err: err}
		}
		if n <= 0 {
			return out, nil
		}
		// struct linux_dirent64 { u64 ino; s64 off; u16 reclen; u8 type; char name[]; }
		for b := buf[:n]; len(b) >= 19; {
			reclen := int(binary.NativeEndian.Uint16(b[16:18]))
			if reclen < 19 || reclen > len(b) {
				break
			}
			nameb := b[19:reclen]
			for i, c := range nameb {
				if c == 0 {
					nameb = nameb[:i]
					break
				}
			}
			if s := string(nameb); s != "." && s != ".." {
				out = append(out, Dirent{Name: s, Type: b[18]})
			}
			b = b[reclen:]
		}
	}
}
