package collect

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// Options says what to collect and how.
type Options struct {
	// NetNS is the network namespace to read: a name under /var/run/netns,
	// or any path naming one (/proc/PID/ns/net); "" is the collector's own.
	NetNS string
	// DockerHost is the Engine API endpoint; "" means $DOCKER_HOST, then
	// unix:///var/run/docker.sock. Only unix:// and tcp:// (no TLS).
	DockerHost string
	// Runner runs external commands; nil means ExecRunner{Env: Env}.
	Runner Runner
	// Env is added to the environment of commands run by the default
	// Runner (e.g. XTABLES_LOCKFILE=...). Ignored when Runner is set.
	Env []string
	// Progress, when set, is called with a short description of each
	// step as it starts (from several goroutines, one at a time).
	Progress func(step string)
}

func orEmpty[T any](v []T) []T {
	if v == nil {
		return []T{}
	}
	return v
}

func joinErr(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}

// ErrNeedsRoot marks errors caused by missing privileges.
var ErrNeedsRoot = errors.New("needs root")

// needsRoot wraps EPERM/EACCES so that the message says what to do.
func needsRoot(err error) error {
	if errors.Is(err, os.ErrPermission) || errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EACCES) {
		return fmt.Errorf("%w (%w: run as root)", err, ErrNeedsRoot)
	}
	return err
}

// ErrNeedsLinux is returned by everything that reads or changes the live
// host (Collect's bundle records it, SaveRules, InNetNS, WriteSysctl) when
// iptscope runs on another system: netfilter, network namespaces and
// /proc are Linux's. Reading a file given with --from works everywhere.
var ErrNeedsLinux = errors.New("collect needs Linux")
