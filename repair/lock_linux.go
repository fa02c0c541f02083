package repair

import (
	"os"
	"syscall"
)

// lockHolder names the process holding the lock file, "" when it cannot
// be found (no such file, no /proc/locks line, another PID namespace).
func lockHolder(path string) string {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return ""
	}
	locks, err := os.ReadFile("/proc/locks")
	if err != nil {
		return ""
	}
	dev := uint64(st.Dev)
	major := uint32((dev>>8)&0xfff) | uint32((dev>>32)&^0xfff)
	minor := uint32(dev&0xff) | uint32((dev>>12)&^0xff)
	if pid := holderIn(string(locks), major, minor, st.Ino); pid > 0 {
		return describePID(pid)
	}
	return ""
}
