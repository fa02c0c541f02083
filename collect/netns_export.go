//go:build linux

package collect

import "os"

// InNetNS runs fn inside the network namespace named as Options.NetNS
// names it ("" or the collector's own: fn runs on the calling thread). fn
// may exec commands (they start in that namespace) and write /proc/sys
// files (resolved against it). Used by package repair.
func InNetNS(name string, fn func() error) error {
	if name == "" {
		return fn()
	}
	t, err := resolveNetNS(name)
	if err != nil {
		return needsRoot(err)
	}
	if !t.other {
		return fn()
	}
	return inNetNS(t.path, fn)
}

// IsInitNetNS reports whether the namespace named as Options.NetNS names
// it is the machine's initial one (that of PID 1): only there does a
// /etc/sysctl.d file apply at boot.
func IsInitNetNS(name string) (bool, error) {
	t, err := resolveNetNS(name)
	if err != nil {
		return false, needsRoot(err)
	}
	ino, err := inode("/proc/1/ns/net")
	if err != nil {
		return false, needsRoot(err)
	}
	return ino == t.inode, nil
}

// SysctlPath maps a dotted sysctl name to its /proc/sys file.
func SysctlPath(name string) string { return sysctlPath(name) }

// WriteSysctl writes value to a sysctl of the namespace named as
// Options.NetNS names it.
func WriteSysctl(netns, name, value string) error {
	return InNetNS(netns, func() error {
		return needsRoot(os.WriteFile(sysctlPath(name), []byte(value+"\n"), 0o644))
	})
}
