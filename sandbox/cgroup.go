package sandbox

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// CgroupLimits are the resource limits of a session's cgroup.
type CgroupLimits struct {
	// Pids caps the tasks (processes and threads, the keeper's included)
	// the session may hold at once; 0 means DefaultPidsMax.
	Pids int64
	// Memory caps the session's memory in bytes, without swap on top;
	// 0 means no limit beyond the caller's own.
	Memory int64
}

// DefaultPidsMax is the pids limit a session gets when none is asked: far
// above what a build or a shell needs, far below what takes a machine
// down (the kernel's pid_max is 4M, a fork bomb reaches it in seconds).
const DefaultPidsMax = 8192

// ErrNoCgroupDelegation matches every *CgroupDelegationError with
// errors.Is: the caller may not create cgroups where a session's cgroup
// has to live.
var ErrNoCgroupDelegation = errors.New("no cgroup delegation")

// CgroupDelegationError says which cgroup the caller cannot use, what it
// lacks there and how to get it.
type CgroupDelegationError struct {
	Path    string // the cgroup directory, as mounted
	Missing string // what the caller lacks, e.g. "write access to cgroup.procs"
	Fix     string // what to do about it
}

func (e *CgroupDelegationError) Error() string {
	return fmt.Sprintf("no cgroup delegation: %s of %q; %s", e.Missing, e.Path, e.Fix)
}

func (e *CgroupDelegationError) Is(target error) bool { return target == ErrNoCgroupDelegation }

// sizeUnits are the suffixes ParseSize takes, powers of 1024 as memory
// limits are counted in pages.
var sizeUnits = []struct {
	suffix string
	mult   int64
}{
	{"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"T", 1 << 40},
}

// ParseSize reads a size in bytes: "100000", or a number with one of the
// suffixes K, M, G, T (powers of 1024, optionally followed by "iB" or "B",
// any case), e.g. "512M", "2G", "1.5G". The result is at least 1 byte.
func ParseSize(s string) (int64, error) {
	bad := func(why string) error {
		return fmt.Errorf("invalid size %q: %s; want a number of bytes or a number with K, M, G or T (powers of 1024), e.g. 100000, 512M, 1.5G", s, why)
	}
	num := strings.TrimSpace(s)
	mult := int64(1)
	up := strings.ToUpper(num)
	for _, u := range sizeUnits {
		for _, suf := range []string{u.suffix + "IB", u.suffix + "B", u.suffix} {
			if strings.HasSuffix(up, suf) {
				num, mult = strings.TrimSpace(num[:len(num)-len(suf)]), u.mult
				break
			}
		}
		if mult != 1 {
			break
		}
	}
	if mult == 1 && strings.HasSuffix(up, "B") {
		num = strings.TrimSpace(num[:len(num)-1])
	}
	if num == "" {
		return 0, bad("no number")
	}
	if n, err := strconv.ParseInt(num, 10, 64); err == nil {
		if n <= 0 {
			return 0, bad("not above zero")
		}
		if n > math.MaxInt64/mult {
			return 0, bad("too large")
		}
		return n * mult, nil
	}
	if mult == 1 {
		return 0, bad("not a whole number of bytes")
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || strings.ContainsAny(num, "eExXpP_") {
		return 0, bad("not a number")
	}
	b := f * float64(mult)
	if b < 1 {
		return 0, bad("not above zero")
	}
	if b >= math.MaxInt64 {
		return 0, bad("too large")
	}
	return int64(b), nil
}

// FormatSize writes n the way ParseSize reads it, in the largest unit it
// divides exactly.
func FormatSize(n int64) string {
	for i := len(sizeUnits) - 1; i >= 0; i-- {
		if u := sizeUnits[i]; n >= u.mult && n%u.mult == 0 {
			return strconv.FormatInt(n/u.mult, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10)
}
