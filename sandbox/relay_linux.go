package sandbox

import (
	"errors"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/muesli/cancelreader"
	"golang.org/x/sys/unix"
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
	drain    atomic.Bool
	drainEnd atomic.Int64 // unix ns: no output is passed on after it
	// stdin reads in through a reader that can be cancelled: once the
	// process is gone, nothing the user types afterwards may be taken.
	stdin  cancelreader.CancelReader
	inDone chan struct{}
}

func newRelay(in, out, errs *os.File) (*relay, error) {
	r := &relay{in: in, out: out, errs: errs, inDone: make(chan struct{})}
	var err error
	if in != nil {
		if r.stdin, err = cancelreader.NewReader(in); err != nil {
			r.stdin = plainReader{in} // what epoll cannot watch never blocks for long
		}
	}
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
	// Large pipes: a stream then moves in a sixteenth of the wake-ups of
	// the default 64 KiB. Best effort (the limit is fs.pipe-max-size).
	for _, f := range []*os.File{r.toChild, r.fromOut} {
		if rc, err := f.SyscallConn(); err == nil { // not Fd(): it makes the pipe blocking
			_ = rc.Control(func(fd uintptr) { _, _ = unix.FcntlInt(fd, unix.F_SETPIPE_SZ, spliceChunk) })
		}
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
		defer close(r.inDone)
		defer r.toChild.Close() // the end of our input is the end of its
		if r.in == nil {
			return
		}
		if fi, err := r.in.Stat(); err == nil && fi.Mode().IsRegular() {
			// A file never keeps a read waiting: it may splice.
			if done, _ := spliceIn(r.toChild, r.in); done {
				return
			}
		}
		_ = copyAll(r.toChild, r.stdin, nil)
	}()
	r.done.Add(2)
	go r.copyOut(r.out, r.fromOut)
	go r.copyOut(r.errs, r.fromErr)
}

func (r *relay) copyOut(dst, src *os.File) {
	defer r.done.Done()
	between := func() {
		if r.drain.Load() {
			// Quiet for a moment after the exit: the rest belongs to a
			// process left behind, which may hold the pipe for ever, and
			// may write to it for ever too: never past drainMax.
			d := time.Now().Add(drainQuiet)
			if end := time.Unix(0, r.drainEnd.Load()); d.After(end) {
				d = end
			}
			_ = src.SetReadDeadline(d)
		}
	}
	if dst != nil {
		if done, _ := spliceOut(dst, src, between); done {
			return
		}
	}
	_ = copyAll(dst, src, between)
}

// Both ends of a relay are one of our pipes and one of the caller's
// streams, so splice(2) moves the data without copying it through this
// process, at pipe speed. Where the caller's stream cannot splice (some
// terminals, sockets of some kinds), it says EINVAL before anything
// moved and the copy loop takes over.
const spliceChunk = 1 << 20

// spliceOut moves our pipe src to dst until src ends. done is false
// when nothing moved and the copy loop should be used.
func spliceOut(dst, src *os.File, between func()) (done bool, err error) {
	rc, err := src.SyscallConn()
	if err != nil {
		return false, err
	}
	dstFd := int(dst.Fd())
	moved := false
	for {
		var n int64
		var serr error
		err := rc.Read(func(fd uintptr) bool {
			for {
				// Our pipe being non-blocking makes the whole splice so:
				// EAGAIN with data waiting means dst is full, and only
				// dst can say when that ends.
				n, serr = splice(int(fd), dstFd)
				if serr != unix.EAGAIN || !hasData(int(fd)) {
					return serr != unix.EAGAIN
				}
				_, _ = unix.Poll([]unix.PollFd{{Fd: int32(dstFd), Events: unix.POLLOUT}}, 100)
			}
		})
		switch {
		case err != nil:
			return true, err // the drain's deadline, or a closed pipe
		case serr == unix.EINVAL && !moved:
			return false, serr
		case serr == unix.EPIPE && (dstFd == 1 || dstFd == 2):
			// Our stdout or stderr is a closed pipe (`run s -- yes |
			// head -1`): die of SIGPIPE, as a write there would have
			// made the runtime do (os.epipecheck), and as a filter in a
			// pipeline should; splice has no such check. The byte
			// cannot land: the pipe is closed for good.
			_, _ = dst.Write([]byte{'\n'})
			return true, serr
		case serr != nil:
			// dst is gone: drain src so the writer inside is not blocked.
			_ = copyAll(nil, src, between)
			return true, serr
		case n == 0:
			return true, nil
		}
		moved = true
		between()
	}
}

// splice moves up to spliceChunk bytes from in to out.
func splice(in, out int) (int64, error) {
	n, err := unix.Splice(in, nil, out, nil, spliceChunk, 0)
	return int64(n), err
}

// hasData reports whether the pipe fd has bytes to read.
func hasData(fd int) bool {
	n, err := unix.IoctlGetInt(fd, unix.TIOCINQ)
	return err == nil && n > 0
}

// spliceIn moves the regular file src to our pipe dst until it ends.
func spliceIn(dst, src *os.File) (done bool, err error) {
	wc, err := dst.SyscallConn()
	if err != nil {
		return false, err
	}
	srcFd := int(src.Fd())
	moved := false
	for {
		var n int64
		var serr error
		err := wc.Write(func(fd uintptr) bool {
			n, serr = splice(srcFd, int(fd))
			return serr != unix.EAGAIN
		})
		switch {
		case err != nil:
			return true, err
		case serr == unix.EINVAL && !moved:
			return false, serr
		case serr != nil || n == 0:
			return true, serr
		}
		moved = true
	}
}

// copyAll copies src to dst (nil: discards) until src ends, calling
// between(), if given, after every read. A dst that fails is dropped and
// the rest discarded, so the writer inside is not blocked.
func copyAll(dst io.Writer, src io.Reader, between func()) error {
	buf := make([]byte, 256<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && dst != nil && !isNilFile(dst) {
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
// before the rest is left to whatever inside still holds the pipe, and
// drainMax how long the output of one that keeps writing is passed on.
const (
	drainQuiet = 100 * time.Millisecond
	drainMax   = 2 * time.Second
)

func isNilFile(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && f == nil
}

// finish waits, after the exit, until both outputs have been passed on:
// to their end, or until they stay quiet for drainQuiet.
func (r *relay) finish() {
	r.drainEnd.Store(time.Now().Add(drainMax).UnixNano())
	r.drain.Store(true)
	if r.stdin != nil {
		r.stdin.Cancel()
	}
	deadline := time.Now().Add(drainQuiet)
	_ = r.fromOut.SetReadDeadline(deadline)
	_ = r.fromErr.SetReadDeadline(deadline)
	r.done.Wait()
	r.fromOut.Close()
	r.fromErr.Close()
	select {
	case <-r.inDone:
	case <-time.After(time.Second): // a write stuck on a full pipe
	}
	if r.stdin != nil {
		r.stdin.Close()
		r.stdin = nil
	}
}

// abandon closes everything without waiting.
func (r *relay) abandon() {
	if r == nil {
		return
	}
	if r.stdin != nil {
		r.stdin.Cancel()
	}
	for _, f := range []*os.File{r.childIn, r.childOut, r.childErr, r.toChild, r.fromOut, r.fromErr} {
		if f != nil {
			f.Close()
		}
	}
}
