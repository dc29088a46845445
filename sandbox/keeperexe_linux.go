package sandbox

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// A keeper re-executed from incarnate's own binary runs the init of
// every package in it (the interface, the registry client, the
// compressors) before it does anything: measured, that is half its page
// faults and the better part of its start. `make build` therefore also
// builds the keeper on its own (internal/keeper, which links this
// package and nothing heavier) beside incarnate, as NAME-keeper, and
// stamps incarnate with that binary's Go build ID. A keeper binary that
// is missing, stamped otherwise, or writable by someone else is not
// used: incarnate starts itself as the keeper, as a plain `go build`
// always does, and works the same, only slower.

// keeperBuildID is the Go build ID of the keeper binary built beside this
// one (set with the linker's -X by make build); empty in a plain build.
var keeperBuildID string

// keeperSuffix names the keeper binary after incarnate's own.
const keeperSuffix = "-keeper"

// keeperFdMin keeps the keeper binary's fd clear of the numbers ForkExec
// moves the child's files to (and the few above them it uses on the way).
const keeperFdMin = 64

// keeperExe returns the path to start a keeper from, and the file to
// close once it has started (nil for incarnate's own binary).
func keeperExe() (string, *os.File) {
	f, err := openKeeperBinary()
	if err != nil {
		return "/proc/self/exe", nil
	}
	// Through the fd, so the binary that runs is the one checked.
	return fmt.Sprintf("/proc/self/fd/%d", f.Fd()), f
}

// KeeperBinary says which keeper binary a session would start from: the
// path of the one beside incarnate, or why incarnate starts itself.
func KeeperBinary() (string, error) {
	f, err := openKeeperBinary()
	if err != nil {
		return "", err
	}
	defer f.Close()
	return f.Name(), nil
}

func openKeeperBinary() (*os.File, error) {
	if keeperBuildID == "" {
		return nil, fmt.Errorf("this build has no keeper binary of its own (make build makes one)")
	}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	path := self + keeperSuffix
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	high, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, keeperFdMin)
	unix.Close(fd)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(high), path)
	if err := trustKeeperBinary(f, self); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// trustKeeperBinary accepts f only as trustworthy as incarnate itself
// (owned by root or by incarnate's owner, writable by no one else) and
// built with it (its Go build ID is the one stamped in).
func trustKeeperBinary(f *os.File, self string) error {
	var st, own unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return err
	}
	if err := unix.Stat(self, &own); err != nil {
		return err
	}
	switch {
	case st.Mode&unix.S_IFMT != unix.S_IFREG:
		return fmt.Errorf("%s: not a regular file", f.Name())
	case st.Mode&0o022 != 0:
		return fmt.Errorf("%s: writable by group or others (mode %o)", f.Name(), st.Mode&0o7777)
	case st.Uid != 0 && st.Uid != own.Uid:
		return fmt.Errorf("%s: owned by uid %d, incarnate by uid %d", f.Name(), st.Uid, own.Uid)
	}
	id, err := goBuildID(f)
	if err != nil {
		return fmt.Errorf("%s: %w", f.Name(), err)
	}
	if id != keeperBuildID {
		return fmt.Errorf("%s: built apart from this incarnate (run make build again)", f.Name())
	}
	return nil
}

// goBuildID reads the Go build ID note, which the linker puts at the
// start of an ELF binary's first page.
func goBuildID(f *os.File) (string, error) {
	page := make([]byte, 4096)
	n, err := f.ReadAt(page, 0)
	if n < 64 {
		return "", fmt.Errorf("too short for an ELF binary: %v", err)
	}
	page = page[:n]
	// A note: namesz 4, descsz, type 4, "Go\x00\x00", then the ID.
	i := bytes.Index(page, []byte("\x04\x00\x00\x00"))
	for ; i >= 0 && i+16 <= len(page); i = nextNote(page, i) {
		descsz := int(binary.LittleEndian.Uint32(page[i+4:]))
		if binary.LittleEndian.Uint32(page[i+8:]) == 4 && string(page[i+12:i+16]) == "Go\x00\x00" &&
			descsz > 0 && i+16+descsz <= len(page) {
			return string(page[i+16 : i+16+descsz]), nil
		}
	}
	return "", fmt.Errorf("no Go build ID in its first page")
}

func nextNote(page []byte, i int) int {
	j := bytes.Index(page[i+1:], []byte("\x04\x00\x00\x00"))
	if j < 0 {
		return -1
	}
	return i + 1 + j
}
