//go:build !linux

package collect

import (
	"context"
	"fmt"
	"os"
	"runtime"

	"github.com/iptscope/iptscope/snapshot"
)

// Collect, off Linux, reads nothing: the snapshot says why in its errors
// (ErrNeedsLinux). Its shape is that of a Linux snapshot with every part
// missing, so commands that take a bundle still work on it.
func Collect(_ context.Context, o Options) *snapshot.Snapshot {
	s := emptySnapshot()
	s.Host.Hostname, _ = os.Hostname()
	s.Host.NetNS = o.NetNS
	s.AddError("platform", fmt.Errorf("reading the live host on %s: %w (run iptscope collect on the Linux host and pass its bundle with --from)", runtime.GOOS, ErrNeedsLinux))
	return s
}

// InNetNS returns ErrNeedsLinux: there are no network namespaces to enter.
func InNetNS(name string, fn func() error) error {
	return fmt.Errorf("entering network namespace %q: %w", name, ErrNeedsLinux)
}

// IsInitNetNS returns ErrNeedsLinux.
func IsInitNetNS(name string) (bool, error) {
	return false, fmt.Errorf("identifying network namespace %q: %w", name, ErrNeedsLinux)
}

// SysctlPath maps a dotted sysctl name to its /proc/sys file (on Linux).
func SysctlPath(name string) string { return sysctlPath(name) }

// WriteSysctl returns ErrNeedsLinux.
func WriteSysctl(netns, name, value string) error {
	return fmt.Errorf("writing sysctl %s: %w", name, ErrNeedsLinux)
}

// inode returns ErrNeedsLinux (namespace files are Linux's).
func inode(path string) (uint64, error) {
	return 0, fmt.Errorf("%s: %w", path, ErrNeedsLinux)
}
