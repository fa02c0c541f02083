package repair

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/iptscope/iptscope/collect"
)

// DefaultLockFile is the legacy backend's xtables lock unless
// XTABLES_LOCKFILE says otherwise (iptables 1.8).
const DefaultLockFile = "/run/xtables.lock"

// LockError says that the xtables lock was held by another process for
// longer than the bounded wait (iptables-restore -w), so nothing was
// written. Holder is "pid N (COMMAND)" when /proc/locks names it.
type LockError struct {
	Lock   string
	Holder string
	Wait   string // seconds
	Err    error
}

func (e *LockError) Error() string {
	who := "another process"
	if e.Holder != "" {
		who = e.Holder
	}
	return fmt.Sprintf("the xtables lock %s is held by %s: gave up after waiting %s s (the legacy iptables backend lets one writer at a time; retry when it is done)", e.Lock, who, e.Wait)
}

func (e *LockError) Unwrap() error { return e.Err }

// lockHeld reports whether a failed iptables-restore gave up on the
// xtables lock. Why the text: iptables-legacy-restore 1.8 exits 4
// (RESOURCE_PROBLEM) for this and for other failures; its message is the
// only tell ("Another app is currently holding the xtables lock").
func lockHeld(err error) bool {
	var ee *collect.ExitError
	return errors.As(err, &ee) && (strings.Contains(ee.Stderr, "holding the xtables lock") || strings.Contains(ee.Stderr, "Can't lock"))
}

// lockFile is the lock the restore tools use: XTABLES_LOCKFILE from the
// runner's or iptscope's environment, else DefaultLockFile.
func lockFile(r collect.Runner) string {
	if er, ok := r.(collect.ExecRunner); ok {
		for _, kv := range er.Env {
			if v, ok := strings.CutPrefix(kv, "XTABLES_LOCKFILE="); ok && v != "" {
				return v
			}
		}
	}
	if v := os.Getenv("XTABLES_LOCKFILE"); v != "" {
		return v
	}
	return DefaultLockFile
}

// holderIn finds, in /proc/locks text, the process that holds the lock
// on the file with device major:minor and inode: "1: FLOCK ADVISORY WRITE
// 2468 fe:00:9978008 0 EOF". It returns the PID, 0 when none holds it.
func holderIn(procLocks string, major, minor uint32, inode uint64) int {
	want := fmt.Sprintf("%02x:%02x:%d", major, minor, inode)
	for _, l := range strings.Split(procLocks, "\n") {
		f := strings.Fields(l)
		// A waiter's line starts "1: -> FLOCK ...": skip those.
		if len(f) < 6 || f[1] == "->" {
			continue
		}
		if f[5] == want {
			pid, err := strconv.Atoi(f[4])
			if err == nil && pid > 0 {
				return pid
			}
		}
	}
	return 0
}

// describePID is "pid N (COMMAND)", or "pid N" when /proc says no more.
func describePID(pid int) string {
	comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if err != nil {
		return fmt.Sprintf("pid %d", pid)
	}
	return fmt.Sprintf("pid %d (%s)", pid, strings.TrimSpace(string(comm)))
}
