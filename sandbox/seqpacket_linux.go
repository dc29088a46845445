package sandbox

import (
	"encoding/json"
	"fmt"

	"golang.org/x/sys/unix"
)

// maxMessage bounds one protocol message; a spawn carries the whole
// environment, which rarely passes a few kilobytes.
const maxMessage = 1 << 20

// sendMsg sends v as one packet, with fds attached.
func sendMsg(conn int, v any, fds ...int) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	return unix.Sendmsg(conn, b, oob, nil, 0)
}

// recvMsg receives one packet into v and returns the fds that came with
// it. A closed peer gives ErrNoKeeper-like EOF: io.EOF is not used since
// seqpacket reads of length 0 mean exactly that.
func recvMsg(conn int, v any) ([]int, error) {
	buf := make([]byte, maxMessage)
	oob := make([]byte, unix.CmsgSpace(4*4))
	for {
		n, oobn, flags, _, err := unix.Recvmsg(conn, buf, oob, unix.MSG_CMSG_CLOEXEC)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, err
		}
		fds, err := parseRights(oob[:oobn])
		if err != nil {
			return nil, err
		}
		if n == 0 && oobn == 0 {
			return nil, errPeerClosed
		}
		if flags&(unix.MSG_TRUNC|unix.MSG_CTRUNC) != 0 {
			closeAll(fds)
			return nil, fmt.Errorf("keeper message truncated")
		}
		if err := json.Unmarshal(buf[:n], v); err != nil {
			closeAll(fds)
			return nil, fmt.Errorf("garbled keeper message: %w", err)
		}
		return fds, nil
	}
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
