package snapshot

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"unicode/utf8"
)

// A bundle is untrusted input: it may come from a ticket, and a crafted
// one must not make doctor misbehave. Validate checks, on load, every
// field that reaches a rule, a path or a terminal against what the
// kernel and Docker accept. What it does not decide (how names are shown)
// is render's job: render sanitises what goes to a terminal.

// ErrInvalid marks a bundle with a field that no real host or daemon
// produces.
var ErrInvalid = errors.New("invalid bundle")

// Bounds on a bundle's lists: far above real hosts (hundreds of networks,
// thousands of containers and ports), low enough that a crafted bundle
// cannot make the checks run for hours.
const (
	maxNetworks   = 10_000
	maxContainers = 100_000
	maxPorts      = 1_000_000 // published ports, all containers together
	maxLinks      = 200_000
	maxName       = 1024 // bytes of a container, network or image name
)

// CheckIfname is the kernel's rule for an interface name (dev_valid_name,
// IFNAMSIZ 16): 1 to 15 bytes, not "." or "..", no "/", ":" or white
// space or control character. With wildcard (iptables' -i/-o) a trailing
// "+" matches any suffix. It returns why a name is refused, "" when it is
// accepted.
func CheckIfname(name string, wildcard bool) string {
	if wildcard {
		name = strings.TrimSuffix(name, "+")
		if name == "" {
			return ""
		}
	}
	switch {
	case name == "":
		return "empty interface name"
	case len(name) > 15:
		return "interface name longer than 15 bytes (IFNAMSIZ)"
	case name == "." || name == "..":
		return "interface name . or .."
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c == '/' || c == ':' || c <= ' ' || c == 0x7f {
			return "interface name with /, :, white space or a control character"
		}
	}
	return ""
}

// CheckBridgeName is CheckIfname for a bridge Docker writes rules for:
// also not starting with "-" or "!" (iptables would read an option), no
// quote, and no trailing "+" (in "-i br+" iptables reads a wildcard that
// matches every br* interface). The kernel accepts such names; Docker's rules for
// them would not say what Docker means.
func CheckBridgeName(name string) string {
	if why := CheckIfname(name, false); why != "" {
		return why
	}
	if name[0] == '-' || name[0] == '!' || strings.HasSuffix(name, "+") || strings.ContainsAny(name, "\"'\\") {
		return "bridge name iptables cannot name as is (leading - or !, trailing +, a quote or a backslash)"
	}
	return ""
}

// Validate checks the snapshot's fields; it returns an error wrapping
// ErrInvalid that names the first bad field (as a JSON path) and why.
func (s *Snapshot) Validate() error {
	// Why two passes: naming each field's path up front cost 0.1 s and
	// 400,000 allocations on a 33,000-port bundle; the quick pass only
	// says whether something is wrong, the second names it.
	v := &validator{quick: true}
	v.snapshot(s)
	if v.err == nil {
		return nil
	}
	v = &validator{}
	v.snapshot(s)
	return v.err
}

type validator struct {
	err error
	// quick: paths are not built (at gives ""), fail only records.
	quick bool
}

var errQuick = errors.New("invalid")

// at is the JSON path of element i of the list at path p ("" when quick).
func (v *validator) at(p string, i int) string {
	if v.quick {
		return ""
	}
	return p + "[" + strconv.Itoa(i) + "]"
}

func (v *validator) fail(path, value, why string) {
	if v.quick {
		v.err = errQuick
		return
	}
	if v.err == nil {
		if len(value) > 80 {
			value = value[:80] + "..."
		}
		v.err = fmt.Errorf("%w: %s %q: %s", ErrInvalid, path, value, why)
	}
}

func (v *validator) text(path, s string, max int) {
	switch {
	case !utf8.ValidString(s):
		v.fail(path, s, "not UTF-8")
	case len(s) > max:
		v.fail(path, s, fmt.Sprintf("longer than %d bytes", max))
	case strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f || r >= 0x80 && r <= 0x9f }):
		v.fail(path, s, "holds a control character")
	}
}

func (v *validator) ifname(path, s string, optional bool) {
	if s == "" && optional {
		return
	}
	if why := CheckIfname(s, false); why != "" {
		v.fail(path, s, why)
	}
}

func (v *validator) addr(path, s string, optional bool) {
	if s == "" && optional {
		return
	}
	if _, err := netip.ParseAddr(s); err != nil {
		v.fail(path, s, "not an IP address")
	}
}

func (v *validator) prefix(path, s string) {
	if _, err := netip.ParsePrefix(s); err != nil {
		v.fail(path, s, "not an address/prefix")
	}
}

func (v *validator) port(path string, p int, zeroOK bool) {
	if p < 0 || p > 65535 || p == 0 && !zeroOK {
		v.fail(path, fmt.Sprint(p), "not a port (1-65535)")
	}
}

func (v *validator) proto(path, p string, emptyOK bool) {
	switch p {
	case "tcp", "udp", "sctp":
	case "":
		if !emptyOK {
			v.fail(path, p, "no protocol")
		}
	default:
		v.fail(path, p, "not tcp, udp or sctp")
	}
}

func (v *validator) snapshot(s *Snapshot) {
	for i := range s.Rules {
		// By pointer: Load parses the dumps (their Ruleset) meanwhile.
		d := &s.Rules[i]
		p := v.at("rules", i)
		switch d.Family {
		case FamilyIPv4, FamilyIPv6:
		default:
			v.fail(p+".family", d.Family, "not ipv4 or ipv6")
		}
		switch d.Backend {
		case "", BackendNFT, BackendLegacy:
		default:
			v.fail(p+".backend", d.Backend, "not nft or legacy")
		}
	}
	if len(s.Links) > maxLinks {
		v.fail("links", fmt.Sprint(len(s.Links)), "too many links")
	}
	for i, l := range s.Links {
		p := v.at("links", i)
		v.ifname(p+".name", l.Name, false)
		v.ifname(p+".master", l.Master, true)
		v.text(p+".kind", l.Kind, 64)
	}
	for i, a := range s.Addrs {
		p := v.at("addrs", i)
		v.ifname(p+".link", a.Link, false)
		v.prefix(p+".cidr", a.CIDR)
	}
	for i, r := range s.Routes {
		p := v.at("routes", i)
		if r.Dst != "default" {
			v.prefix(p+".dst", r.Dst)
		}
		v.addr(p+".gateway", r.Gateway, true)
		v.ifname(p+".dev", r.Dev, true)
	}
	for i, n := range s.Neighbors {
		p := v.at("neighbors", i)
		v.ifname(p+".link", n.Link, false)
		v.addr(p+".ip", n.IP, false)
	}
	for k, sc := range s.Sysctls {
		v.text("sysctls key", k, 256)
		if strings.Contains(k, "..") || strings.HasPrefix(k, "/") {
			v.fail("sysctls", k, "not a sysctl name")
		}
		v.text("sysctls["+k+"]", sc.Value, 4096)
	}
	for i, pr := range s.Proxies {
		p := v.at("proxies", i)
		v.proto(p+".proto", pr.Proto, true)
		v.addr(p+".host_ip", pr.HostIP, true)
		v.addr(p+".container_ip", pr.ContainerIP, true)
		v.port(p+".host_port", pr.HostPort, true)
		v.port(p+".host_port_end", pr.HostPortEnd, true)
		v.port(p+".container_port", pr.ContainerPort, true)
	}
	if s.Docker != nil {
		v.docker(s.Docker)
	}
}

func (v *validator) docker(d *Docker) {
	v.text("docker.version", d.Version, 64)
	if len(d.Networks) > maxNetworks {
		v.fail("docker.networks", fmt.Sprint(len(d.Networks)), "too many networks")
	}
	if len(d.Containers) > maxContainers {
		v.fail("docker.containers", fmt.Sprint(len(d.Containers)), "too many containers")
	}
	for i, n := range d.Networks {
		p := v.at("docker.networks", i)
		v.text(p+".id", n.ID, 128)
		v.text(p+".name", n.Name, maxName)
		v.text(p+".driver", n.Driver, 128)
		if n.BridgeName != "" {
			if why := CheckBridgeName(n.BridgeName); why != "" {
				v.fail(p+".bridge_name", n.BridgeName, why)
			}
		}
		for j, sn := range n.Subnets {
			v.prefix(v.at(p+".subnets", j), sn)
		}
		for j, g := range n.Gateways {
			v.addr(v.at(p+".gateways", j), g, true)
		}
		for k, val := range n.Options {
			v.text(p+".options key", k, 256)
			v.text(p+".options["+k+"]", val, 4096)
			if k == "com.docker.network.bridge.name" {
				if why := CheckBridgeName(val); why != "" {
					v.fail(p+".options["+k+"]", val, why)
				}
			}
		}
	}
	ports := 0
	for i, c := range d.Containers {
		p := v.at("docker.containers", i)
		v.text(p+".id", c.ID, 128)
		v.text(p+".name", c.Name, maxName)
		v.text(p+".image", c.Image, maxName)
		v.text(p+".state", c.State, 64)
		for j, e := range c.Endpoints {
			ep := v.at(p+".endpoints", j)
			v.text(ep+".network", e.Network, maxName)
			v.text(ep+".network_id", e.NetworkID, 128)
			v.addr(ep+".ip", e.IP, true)
			v.addr(ep+".ipv6", e.IPv6, true)
			v.addr(ep+".gateway", e.Gateway, true)
			if e.IPPrefixLen < 0 || e.IPPrefixLen > 128 {
				v.fail(ep+".ip_prefix_len", fmt.Sprint(e.IPPrefixLen), "not a prefix length")
			}
			v.ifname(ep+".host_veth", e.HostVeth, true)
		}
		ports += len(c.Ports)
		for j, b := range c.Ports {
			bp := v.at(p+".ports", j)
			v.addr(bp+".host_ip", b.HostIP, true)
			v.port(bp+".host_port", b.HostPort, true)
			v.port(bp+".container_port", b.ContainerPort, false)
			v.proto(bp+".proto", b.Proto, false)
		}
	}
	if ports > maxPorts {
		v.fail("docker.containers[].ports", fmt.Sprint(ports), "too many published ports")
	}
}
