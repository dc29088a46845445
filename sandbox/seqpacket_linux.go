package sandbox

import (
	"encoding/json"
	"fmt"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// maxMessage bounds one protocol message; a spawn carries the whole
// environment, which rarely passes a few kilobytes.
const maxMessage = 1 << 20

// packetConn is one end of a SOCK_SEQPACKET connection, driven through
// the runtime's poller: a goroutine waiting on it parks instead of
// holding an OS thread, so the keeper does not start a thread for every
// client (thread creation is a good part of a millisecond).
type packetConn struct {
	f  *os.File
	rc syscall.RawConn
}

func newPacketConn(fd int, name string) (*packetConn, error) {
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, err
	}
	f := os.NewFile(uintptr(fd), name)
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, err
	}
	return &packetConn{f: f, rc: rc}, nil
}

func (c *packetConn) Close() error { return c.f.Close() }

// send sends v as one packet of JSON, with fds attached.
func (c *packetConn) send(v any, fds ...int) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return c.sendBytes(b, fds...)
}

// sendBytes sends b as one packet, with fds attached.
func (c *packetConn) sendBytes(b []byte, fds ...int) error {
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	var serr error
	err := c.rc.Write(func(fd uintptr) bool {
		serr = unix.Sendmsg(int(fd), b, oob, nil, 0)
		return serr != unix.EAGAIN
	})
	if err != nil {
		return err
	}
	return serr
}

// recv receives one packet of JSON into v and returns the fds that came
// with it. A peer that closed the connection gives errPeerClosed.
func (c *packetConn) recv(v any) ([]int, error) {
	b, fds, err := c.recvBytes()
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, v); err != nil {
		closeAll(fds)
		return nil, fmt.Errorf("garbled keeper message: %w", err)
	}
	return fds, nil
}

// recvBytes receives one packet and the fds that came with it.
func (c *packetConn) recvBytes() ([]byte, []int, error) {
	var (
		buf, oob  []byte
		n, oobn   int
		flags     int
		rerr      error
		sizeKnown bool
	)
	err := c.rc.Read(func(fd uintptr) bool {
		if !sizeKnown {
			// Peek at the length first, so each message gets a buffer of
			// its own size rather than a fresh megabyte and its faults.
			size, _, err := unix.Recvfrom(int(fd), nil, unix.MSG_PEEK|unix.MSG_TRUNC)
			if err == unix.EAGAIN {
				return false
			}
			if err != nil {
				rerr = err
				return true
			}
			if size > maxMessage {
				rerr = fmt.Errorf("keeper message of %d bytes is over the %d limit", size, maxMessage)
				return true
			}
			// At least a page: every reply but a spawn's is far smaller,
			// and a CI run once saw an exit reply come back truncated
			// into the buffer its own peek had sized.
			buf, oob, sizeKnown = make([]byte, max(size, 4096)), make([]byte, unix.CmsgSpace(4*4)), true
		}
		n, oobn, flags, _, rerr = unix.Recvmsg(int(fd), buf, oob, unix.MSG_CMSG_CLOEXEC)
		return rerr != unix.EAGAIN
	})
	if err != nil {
		return nil, nil, err
	}
	if rerr != nil {
		return nil, nil, rerr
	}
	fds, err := parseRights(oob[:oobn])
	if err != nil {
		return nil, nil, err
	}
	if n == 0 && oobn == 0 {
		return nil, nil, errPeerClosed
	}
	if flags&(unix.MSG_TRUNC|unix.MSG_CTRUNC) != 0 {
		closeAll(fds)
		return nil, nil, fmt.Errorf("keeper message truncated")
	}
	return buf[:n], fds, nil
}

// peerCred is the process at the other end, as this process's user and
// PID namespaces see it: pid 0 is one outside the PID namespace.
func (c *packetConn) peerCred() (*unix.Ucred, error) {
	var cred *unix.Ucred
	var gerr error
	err := c.rc.Control(func(fd uintptr) {
		cred, gerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	})
	if err != nil {
		return nil, err
	}
	return cred, gerr
}

var errPeerClosed = fmt.Errorf("peer closed the connection")

func parseRights(oob []byte) ([]int, error) {
	if len(oob) == 0 {
		return nil, nil
	}
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, err
	}
	var fds []int
	for i := range msgs {
		got, err := unix.ParseUnixRights(&msgs[i])
		if err != nil {
			return nil, err
		}
		fds = append(fds, got...)
	}
	return fds, nil
}

func closeAll(fds []int) {
	for _, fd := range fds {
		unix.Close(fd)
	}
}
