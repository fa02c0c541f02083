//go:build linux

package collect

import (
	"bufio"
	"fmt"
	"os"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ipt_getinfo of linux/netfilter_ipv4/ip_tables.h (the same layout as
// ip6t_getinfo): name[32], valid_hooks, hook_entry[5], underflow[5],
// num_entries, size.
const iptGetinfoSize = 32 + 4 + 5*4 + 5*4 + 4 + 4

// IPT_SO_GET_INFO and IP6T_SO_GET_INFO (IPT_BASE_CTL), and SOL_IPV6.
const (
	iptSoGetInfo = 64
	solIPv6      = 41
)

// legacyTablesInfo asks the kernel, for every legacy iptables table of
// both families in the namespace named as Options.NetNS names it, the
// getinfo header: the number of rules, the blob's size and the hook
// offsets. It is what iptables-legacy-save asks first, without the rules:
// a few system calls instead of a dump of 100,000 rules. Any rule added,
// deleted or flushed changes it; a rule replaced by one of exactly the
// same size does not, which is why PollRules still hashes the whole dump
// now and then. The tables are those /proc/net/ip{,6}_tables_names lists
// (asking for another would load its module).
func legacyTablesInfo(netns string) (string, error) {
	var b strings.Builder
	err := InNetNS(netns, func() error {
		for _, fam := range []struct {
			names       string
			domain, sol int
		}{
			{"ip_tables_names", unix.AF_INET, unix.SOL_IP},
			{"ip6_tables_names", unix.AF_INET6, solIPv6},
		} {
			// thread-self: this thread is the one in the namespace.
			f, err := os.Open("/proc/thread-self/net/" + fam.names)
			if err != nil {
				if os.IsNotExist(err) {
					continue // the module is not loaded: no legacy table
				}
				return err
			}
			var tables []string
			sc := bufio.NewScanner(f)
			for sc.Scan() {
				tables = append(tables, strings.TrimSpace(sc.Text()))
			}
			f.Close()
			if len(tables) == 0 {
				continue
			}
			fd, err := unix.Socket(fam.domain, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_RAW)
			if err != nil {
				return needsRoot(fmt.Errorf("opening a raw socket: %w", err))
			}
			for _, t := range tables {
				var info [iptGetinfoSize]byte
				copy(info[:31], t)
				l := uint32(len(info))
				_, _, errno := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), uintptr(fam.sol), iptSoGetInfo,
					uintptr(unsafe.Pointer(&info[0])), uintptr(unsafe.Pointer(&l)), 0)
				if errno != 0 {
					unix.Close(fd)
					return needsRoot(fmt.Errorf("getsockopt IPT_SO_GET_INFO %s: %w", t, errno))
				}
				fmt.Fprintf(&b, "%s %s %x\n", fam.names, t, info[32:])
			}
			unix.Close(fd)
		}
		return nil
	})
	return b.String(), err
}
