package collect

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/iptscope/iptscope/snapshot"
)

// sysctlNames lists the sysctls read for a namespace whose bridges and
// other interfaces (uplinks: not bridges, bridge ports or lo) are given:
// forwarding, br_netfilter's bridge-nf-call-*, per bridge route_localnet
// (userland-proxy off) and forwarding, per uplink IPv6 accept_ra (with
// forwarding on, accept_ra=1 ignores router advertisements).
func sysctlNames(bridges, uplinks []string) []string {
	names := []string{
		"net.ipv4.ip_forward",
		"net.ipv4.conf.all.forwarding",
		"net.ipv6.conf.all.forwarding",
		"net.ipv6.conf.default.forwarding",
		"net.bridge.bridge-nf-call-iptables",
		"net.bridge.bridge-nf-call-ip6tables",
	}
	for _, b := range bridges {
		names = append(names, "net.ipv4.conf."+b+".route_localnet", "net.ipv4.conf."+b+".forwarding")
	}
	for _, u := range uplinks {
		names = append(names, "net.ipv6.conf."+u+".accept_ra")
	}
	return names
}

// sysctlPath maps a dotted name to its /proc/sys file. Interface names may
// contain dots (eth0.100), which `sysctl` writes as slashes: only the
// fixed prefixes are split here.
func sysctlPath(name string) string {
	for _, pre := range []string{"net.ipv4.conf.", "net.ipv6.conf."} {
		if rest, ok := strings.CutPrefix(name, pre); ok {
			i := strings.LastIndex(rest, ".")
			if i > 0 {
				return "/proc/sys/" + strings.ReplaceAll(pre, ".", "/") + rest[:i] + "/" + rest[i+1:]
			}
		}
	}
	return "/proc/sys/" + strings.ReplaceAll(name, ".", "/")
}

// readSysctls reads names from /proc/sys. It must run on a thread in the
// target namespace: /proc/sys/net is resolved against the namespace of the
// task that opens the file. A missing file is Present=false, not an error.
func readSysctls(names []string) (map[string]snapshot.Sysctl, error) {
	out := make(map[string]snapshot.Sysctl, len(names))
	var errs []error
	for _, n := range names {
		b, err := os.ReadFile(sysctlPath(n))
		switch {
		case err == nil:
			out[n] = snapshot.Sysctl{Value: strings.TrimSpace(string(b)), Present: true}
		case errors.Is(err, fs.ErrNotExist):
			out[n] = snapshot.Sysctl{Present: false}
		default:
			errs = append(errs, fmt.Errorf("reading sysctl %s: %w", n, needsRoot(err)))
		}
	}
	return out, errors.Join(errs...)
}
