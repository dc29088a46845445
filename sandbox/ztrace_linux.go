package sandbox

import (
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

var traceFd = func() int {
	fd, err := unix.Open("/tmp/inc-trace", unix.O_WRONLY|unix.O_APPEND|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1
	}
	// keep it above the fds the stages use
	nfd, _ := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 100)
	unix.Close(fd)
	return nfd
}()

func Trace(what string) {
	if traceFd < 0 {
		return
	}
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	unix.Write(traceFd, []byte(strconv.FormatInt(ts.Nano()/1000, 10)+" "+strconv.Itoa(os.Getpid())+" "+what+"\n"))
}

var _ = time.Now
