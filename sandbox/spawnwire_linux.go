package sandbox

import (
	"encoding/binary"
	"errors"
	"fmt"
	"path"

	"golang.org/x/sys/unix"
)

// The keeper's messages to its spawner are binary, so that the spawner
// of the release build, which is C before the Go runtime
// (internal/prestage/c/spawner.c), reads them as the Go one does:
//
//	"incS", a kind byte ('C' confine, 'J' job), then fields:
//	u32/u64 little-endian, a string as its u32 length, its bytes and a
//	NUL (so C can use it in place), a list as a u32 count and strings.
//
// A confine message lists the spawner's ops in order, each as its kind,
// its exit status and what applying it takes, worked out here, where the
// policy is: the capabilities kept, the Landlock scopes, the seccomp
// program. Then the statuses a job's failures exit with. The Go spawner
// rebuilds the ops and applies them as any stage does; the C one applies
// the worked-out form, naming the same steps in its errors.
//
// The spawner answers in JSON (spawnerReply): the keeper reads what it
// says as untrusted either way.

var spawnerMagic = [4]byte{'i', 'n', 'c', 'S'}

const (
	wireConfine = 'C'
	wireJob     = 'J'
	wireNested  = 1 // an op's flag: a nested session's variant
	// wireListMax bounds a list's count: no more strings (5 bytes each at
	// least) fit in a message. The message's size is the limit.
	wireListMax = maxMessage / 5
)

type wireWriter struct{ b []byte }

func newWire(kind byte) *wireWriter {
	return &wireWriter{b: append(append([]byte{}, spawnerMagic[:]...), kind)}
}

func (w *wireWriter) u32(v uint32) { w.b = binary.LittleEndian.AppendUint32(w.b, v) }
func (w *wireWriter) u64(v uint64) { w.b = binary.LittleEndian.AppendUint64(w.b, v) }

func (w *wireWriter) str(s string) {
	w.u32(uint32(len(s)))
	w.b = append(append(w.b, s...), 0)
}

func (w *wireWriter) list(l []string) {
	w.u32(uint32(len(l)))
	for _, s := range l {
		w.str(s)
	}
}

// filter writes a seccomp program as the kernel's struct sock_filter.
func (w *wireWriter) filter(filter []unix.SockFilter) {
	for _, f := range filter {
		w.u32(uint32(f.Code) | uint32(f.Jt)<<16 | uint32(f.Jf)<<24)
		w.u32(f.K)
	}
}

type wireReader struct {
	b   []byte
	bad bool
}

func openWire(b []byte, kind byte) (*wireReader, error) {
	if len(b) < 5 || [4]byte(b[:4]) != spawnerMagic || b[4] != kind {
		return nil, fmt.Errorf("not a spawner message of kind %q", kind)
	}
	return &wireReader{b: b[5:]}, nil
}

func (r *wireReader) take(n int) []byte {
	if r.bad || n < 0 || n > len(r.b) {
		r.bad = true
		return nil
	}
	p := r.b[:n]
	r.b = r.b[n:]
	return p
}

func (r *wireReader) u32() uint32 {
	if p := r.take(4); p != nil {
		return binary.LittleEndian.Uint32(p)
	}
	return 0
}

func (r *wireReader) u64() uint64 {
	if p := r.take(8); p != nil {
		return binary.LittleEndian.Uint64(p)
	}
	return 0
}

func (r *wireReader) str() string {
	p := r.take(int(r.u32()) + 1)
	if p == nil || p[len(p)-1] != 0 {
		r.bad = true
		return ""
	}
	return string(p[:len(p)-1])
}

func (r *wireReader) list() []string {
	n := r.u32()
	if n > wireListMax {
		r.bad = true
		return nil
	}
	var l []string
	for i := uint32(0); i < n && !r.bad; i++ {
		l = append(l, r.str())
	}
	return l
}

// end checks that everything was read, and nothing was short.
func (r *wireReader) end() error {
	if r.bad || len(r.b) != 0 {
		return errors.New("garbled spawner message")
	}
	return nil
}

func nestedFlag(on bool) uint32 {
	if on {
		return wireNested
	}
	return 0
}

// encodeConfine is the confine message for ops.
func encodeConfine(ops []Op) ([]byte, error) {
	w := newWire(wireConfine)
	w.u32(uint32(len(ops)))
	for _, op := range ops {
		w.str(op.Kind())
		w.u32(uint32(op.Status()))
		if err := confinePayload(w, op); err != nil {
			return nil, err
		}
	}
	for _, s := range []int{StatusChdir, StatusCannotExec, StatusNotFound, StatusStage} {
		w.u32(uint32(s))
	}
	return w.b, nil
}

// confinePayload writes what applying op takes, after its kind and status.
func confinePayload(w *wireWriter, op Op) error {
	switch o := op.(type) {
	case NoNewPrivs, CloseFds, FreshKeyring:
	case LandlockScope:
		var scopes uint64
		if LandlockABI() >= 6 {
			scopes = uint64(landlockScopes)
		}
		w.u64(scopes)
	case CapBounds:
		last, err := lastCap()
		if err != nil {
			return err
		}
		w.u32(nestedFlag(o.Nested))
		w.u64(keptCaps(o.Nested))
		w.u32(uint32(last))
	case Seccomp:
		filter, err := seccompFilter(o.Nested)
		if err != nil {
			return err
		}
		w.u32(nestedFlag(o.Nested))
		w.u32(uint32(len(filter)))
		w.filter(filter)
	default:
		return fmt.Errorf("op %s is not one a spawner applies", op.Kind())
	}
	return nil
}

// decodeConfine is the Go spawner's reading of a confine message: the
// ops again.
func decodeConfine(b []byte) ([]Op, error) {
	r, err := openWire(b, wireConfine)
	if err != nil {
		return nil, err
	}
	n := r.u32()
	if n > wireListMax {
		return nil, errors.New("garbled spawner message")
	}
	var ops []Op
	for i := uint32(0); i < n && !r.bad; i++ {
		kind := r.str()
		r.u32() // the status, which the op knows itself
		var op Op
		switch kind {
		case "no_new_privs":
			op = NoNewPrivs{}
		case "close_fds":
			op = CloseFds{}
		case "fresh_keyring":
			op = FreshKeyring{}
		case "landlock_scope":
			r.u64()
			op = LandlockScope{}
		case "cap_bounds":
			nested := r.u32()&wireNested != 0
			r.u64()
			r.u32()
			op = CapBounds{Nested: nested}
		case "seccomp":
			nested := r.u32()&wireNested != 0
			r.take(8 * int(r.u32()))
			op = Seccomp{Nested: nested}
		default:
			return nil, fmt.Errorf("op %q is not one a spawner applies", kind)
		}
		ops = append(ops, op)
	}
	for range 4 {
		r.u32()
	}
	return ops, r.end()
}

// encodeJob is the job message for req.
func encodeJob(id uint64, req SpawnRequest) ([]byte, error) {
	w := newWire(wireJob)
	w.u64(id)
	w.list(req.Argv)
	w.u32(uint32(len(req.Fallback)))
	for _, f := range req.Fallback {
		w.list(f)
	}
	w.list(req.Env)
	w.str(cleanPath(req.Dir))
	w.str(cleanPath(req.DirElse))
	w.u32(req.Umask)
	var tty uint32
	if req.Tty {
		tty = 1
	}
	w.u32(tty)
	w.u32(uint32(req.Rows) | uint32(req.Cols)<<16)
	if len(w.b) > maxMessage {
		return nil, fmt.Errorf("sandbox: the command and its environment take %d bytes, over the %d a spawn may", len(w.b), maxMessage)
	}
	return w.b, nil
}

// cleanPath is p as the spawner's chdir takes it, cleaned here so that the
// C spawner need not.
func cleanPath(p string) string {
	if p == "" {
		return ""
	}
	return path.Clean(p)
}

// decodeJob is the Go spawner's reading of a job message.
func decodeJob(b []byte) (uint64, SpawnRequest, error) {
	r, err := openWire(b, wireJob)
	if err != nil {
		return 0, SpawnRequest{}, err
	}
	id := r.u64()
	req := SpawnRequest{Argv: r.list()}
	n := r.u32()
	if n > wireListMax {
		return 0, SpawnRequest{}, errors.New("garbled spawner message")
	}
	for i := uint32(0); i < n && !r.bad; i++ {
		req.Fallback = append(req.Fallback, r.list())
	}
	req.Env, req.Dir, req.DirElse, req.Umask = r.list(), r.str(), r.str(), r.u32()
	req.Tty = r.u32() != 0
	size := r.u32()
	req.Rows, req.Cols = uint16(size), uint16(size>>16)
	return id, req, r.end()
}
