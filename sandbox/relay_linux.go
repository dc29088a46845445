package sandbox

import (
	"errors"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// A process without a terminal gets pipes for its standard streams, and
// the client copies between them and its own, as ssh does without a
// terminal: a host file or terminal handed in as it is would let the
// session chmod it through /proc/self/fd, or read what the user types at
// the host prompt long after the command is done.

type relay struct {
	in, out, errs *os.File // the caller's streams (nil: none)
	// The pipes: the process's ends (sent to the keeper, then closed
	// here) and ours.
	childIn, childOut, childErr *os.File
	toChild, fromOut, fromErr   *os.File
	done                        sync.WaitGroup // the two output copies
	// drain is set once the process has exited: from then on a pause in
	// the output ends the copy.
	drain atomic.Bool
}

func newRelay(in, out, errs *os.File) (*relay, error) {
	r := &relay{in: in, out: out, errs: errs}
	var err error
	if r.childIn, r.toChild, err = os.Pipe(); err != nil {
		return nil, err
	}
	if r.fromOut, r.childOut, err = os.Pipe(); err != nil {
		r.abandon()
		return nil, err
	}
	if r.fromErr, r.childErr, err = os.Pipe(); err != nil {
		r.abandon()
		return nil, err
	}
	return r, nil
}

// inside returns the process's ends, in the order of fds 0-2.
func (r *relay) inside() []int {
	return []int{int(r.childIn.Fd()), int(r.childOut.Fd()), int(r.childErr.Fd())}
}

// closeInside drops this process's copies of the process's ends, so that
// its exit is the end of its output.
func (r *relay) closeInside() {
	for _, f := range []*os.File{r.childIn, r.childOut, r.childErr} {
		if f != nil {
			f.Close()
		}
	}
}

// start copies stdin in and the output out.
func (r *relay) start() {
	go func() {
		if r.in != nil {
			_ = copyAll(r.toChild, r.in, nil)
		}
		r.toChild.Close() // the end of our input is the end of its
	}()
	r.done.Add(2)
	go r.copyOut(r.out, r.fromOut)
	go r.copyOut(r.errs, r.fromErr)
}

func (r *relay) copyOut(dst, src *os.File) {
	defer r.done.Done()
	_ = copyAll(dst, src, func() {
		if r.drain.Load() {
			// Quiet for a moment after the exit: the rest belongs to a
			// process left behind, which may hold the pipe for ever.
			_ = src.SetReadDeadline(time.Now().Add(drainQuiet))
		}
	})
}

// copyAll copies src to dst (nil: discards) until src ends, calling
// between(), if given, after every read. A dst that fails is dropped and
// the rest discarded, so the writer inside is not blocked.
func copyAll(dst, src *os.File, between func()) error {
	buf := make([]byte, 256<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && dst != nil {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				dst = nil
			}
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		if between != nil {
			between()
		}
	}
}

// drainQuiet is how long output may pause after the process exited
// before the rest is left to whatever inside still holds the pipe.
const drainQuiet = 100 * time.Millisecond

// finish waits, after the exit, until both outputs have been passed on:
// to their end, or until they stay quiet for drainQuiet.
func (r *relay) finish() {
	r.drain.Store(true)
	deadline := time.Now().Add(drainQuiet)
	_ = r.fromOut.SetReadDeadline(deadline)
	_ = r.fromErr.SetReadDeadline(deadline)
	r.done.Wait()
	r.fromOut.Close()
	r.fromErr.Close()
}

// abandon closes everything without waiting.
func (r *relay) abandon() {
	if r == nil {
		return
	}
	for _, f := range []*os.File{r.childIn, r.childOut, r.childErr, r.toChild, r.fromOut, r.fromErr} {
		if f != nil {
			f.Close()
		}
	}
}
