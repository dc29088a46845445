package fsutil

import (
	"bytes"
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// ListXattrs lists the extended attributes of path (not following a
// symlink) that the caller can see; none where the file system has none.
func ListXattrs(path string) ([]string, error) {
	return listXattrs(path, func(buf []byte) (int, error) { return unix.Llistxattr(path, buf) })
}

// ListXattrsFd is ListXattrs of an open file (not an O_PATH one).
func ListXattrsFd(f *os.File) ([]string, error) {
	return listXattrs(f.Name(), func(buf []byte) (int, error) { return unix.Flistxattr(int(f.Fd()), buf) })
}

func listXattrs(path string, list func([]byte) (int, error)) ([]string, error) {
	buf := make([]byte, 256)
	for {
		n, err := list(buf)
		switch {
		case errors.Is(err, unix.ERANGE):
			buf = make([]byte, 2*len(buf))
			continue
		case errors.Is(err, unix.ENOTSUP):
			return nil, nil
		case err != nil:
			return nil, &os.PathError{Op: "listxattr", Path: path, Err: err}
		}
		var names []string
		for _, name := range bytes.Split(buf[:n], []byte{0}) {
			if len(name) > 0 {
				names = append(names, string(name))
			}
		}
		return names, nil
	}
}

// GetXattr reads attribute name of path (not following a symlink) into
// buf, grown as needed; buf may be nil.
func GetXattr(path, name string, buf []byte) ([]byte, error) {
	return getXattr(path, name, buf, func(b []byte) (int, error) { return unix.Lgetxattr(path, name, b) })
}

// GetXattrFd is GetXattr of an open file (not an O_PATH one).
func GetXattrFd(f *os.File, name string, buf []byte) ([]byte, error) {
	return getXattr(f.Name(), name, buf, func(b []byte) (int, error) { return unix.Fgetxattr(int(f.Fd()), name, b) })
}

func getXattr(path, name string, buf []byte, get func([]byte) (int, error)) ([]byte, error) {
	buf = buf[:cap(buf)]
	if len(buf) == 0 {
		buf = make([]byte, 256)
	}
	for {
		n, err := get(buf)
		if errors.Is(err, unix.ERANGE) {
			buf = make([]byte, 2*len(buf))
			continue
		}
		if err != nil {
			return nil, &os.PathError{Op: "getxattr " + name, Path: path, Err: err}
		}
		return buf[:n], nil
	}
}
