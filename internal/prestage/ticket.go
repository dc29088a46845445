package prestage

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
)

// Ticket is what the stage needs of a session beyond its command line:
// written by the Go side when the keeper is up, read by stage.c's
// parse_ticket. Only the Go side decides what goes in.
type Ticket struct {
	EUID uint32
	// SockDev and SockIno are the keeper socket's: a ticket older than
	// the socket beside it (a keeper since, whose ticket was not
	// written) is not used.
	SockDev, SockIno uint64
	Root             string // the store, as the CLI resolved it
	Name             string
	Entered          string // the file whose time says when the session was entered
	// The environment, as session.Environ builds it: Head, then the
	// caller's variables named in Pass or starting with one of
	// Prefixes, then Specs applied (NAME=VALUE sets, a bare NAME passes
	// the caller's), then Tail.
	Head, Pass, Prefixes, Specs, Tail []string
	// For `enter`: the session's own shell (its --shell), and the
	// config file the shell may come from next, as the CLI found it
	// when the keeper started (Config is empty when it could not tell:
	// the stage then leaves enter to Go). ConfigStamp is that file's
	// inode, size and mtime, or zero when there was none: a config
	// edited since is Go's to read.
	Shell, Config, ConfigShell string
	ConfigStamp                [3]uint64
}

// The limits stage.c holds a ticket to.
const (
	maxTicket = 64 << 10
	maxList   = 256
)

var magic = [8]byte{'i', 'n', 'c', 'T', 2, 0, 0, 0}

// Marshal encodes t: the magic, the uid, the socket's device and inode
// (little-endian uint64s), then each string as a
// little-endian uint32 length and its bytes, each list as a count and
// its strings, then the enter fields: three strings and the stamp's
// three uint64s.
func (t *Ticket) Marshal() ([]byte, error) {
	b := append([]byte{}, magic[:]...)
	b = binary.LittleEndian.AppendUint32(b, t.EUID)
	b = binary.LittleEndian.AppendUint64(b, t.SockDev)
	b = binary.LittleEndian.AppendUint64(b, t.SockIno)
	for _, s := range []string{t.Root, t.Name, t.Entered} {
		b = appendString(b, s)
	}
	for _, l := range [][]string{t.Head, t.Pass, t.Prefixes, t.Specs, t.Tail} {
		if len(l) > maxList {
			return nil, errors.New("prestage: a ticket list is too long")
		}
		b = binary.LittleEndian.AppendUint32(b, uint32(len(l)))
		for _, s := range l {
			b = appendString(b, s)
		}
	}
	for _, s := range []string{t.Shell, t.Config, t.ConfigShell} {
		b = appendString(b, s)
	}
	for _, v := range t.ConfigStamp {
		b = binary.LittleEndian.AppendUint64(b, v)
	}
	if len(b) > maxTicket {
		return nil, errors.New("prestage: the ticket is too large")
	}
	return b, nil
}

func appendString(b []byte, s string) []byte {
	b = binary.LittleEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

// TicketPath is the ticket beside the keeper socket sock.
func TicketPath(sock string) string { return strings.TrimSuffix(sock, ".sock") + ".ticket" }

// Write puts t at path, whole or not at all: the stage must never read
// half a ticket.
func (t *Ticket) Write(path string) error {
	b, err := t.Marshal()
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, path)
}

// SourceSum identifies the stage's sources and flags in dir, so a test
// can tell a blob that no longer matches its C.
func SourceSum(dir string) (string, error) {
	h := sha256.New()
	for _, name := range []string{"stage.c", "spawner.c", "stage.ld", "cflags"} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return "", err
		}
		h.Write([]byte(name + "\x00"))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
