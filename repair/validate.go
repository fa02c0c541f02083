package repair

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"strings"

	"github.com/iptscope/iptscope/diagnose"
	"github.com/iptscope/iptscope/parse"
	"github.com/iptscope/iptscope/snapshot"
)

// A plan's values come from the host and from Docker's API (bridge names
// from network options, addresses, ports, container names in no rule
// but in notes). Before any of it reaches an iptables-restore payload or
// a sysctl path, every value is checked against what the kernel accepts:
// a bridge option "docker0\n-A INPUT -j ACCEPT" must never become a
// payload line of its own, and a sysctl name must never walk out of
// /proc/sys/net.

// ErrUnsafePlan marks a plan with a value the kernel would not accept or
// that could change what the payload says: nothing is applied.
var ErrUnsafePlan = errors.New("unsafe plan")

// PlanError is the first operation of a plan that failed validation.
type PlanError struct {
	Op  diagnose.Op
	Why string
}

func (e *PlanError) Error() string {
	what := e.Op.Line()
	if e.Op.Kind == diagnose.OpSysctl {
		what = "sysctl " + e.Op.Name + "=" + e.Op.Value
	}
	return fmt.Sprintf("%v: %s %s: %q: %s (nothing was changed; please report it)", ErrUnsafePlan, e.Op.Family, e.Op.Table, what, e.Why)
}

func (e *PlanError) Unwrap() error { return ErrUnsafePlan }

// ValidatePlan checks every operation of p: family, table, chain name,
// position, and the rule text (one line of printable text that parses,
// with interface names, addresses, ports and NAT destinations the kernel
// accepts), and for sysctls the name and value. It returns a *PlanError
// for the first operation that fails.
func ValidatePlan(p *diagnose.Plan) error {
	if p == nil {
		return nil
	}
	switch p.Backend {
	case "", snapshot.BackendNFT, snapshot.BackendLegacy:
	default:
		return &PlanError{Why: fmt.Sprintf("unknown backend %q", p.Backend)}
	}
	for _, op := range p.Ops {
		if why := checkOp(op); why != "" {
			return &PlanError{Op: op, Why: why}
		}
	}
	return nil
}

func checkOp(op diagnose.Op) string {
	switch op.Kind {
	case diagnose.OpSysctl:
		return checkSysctl(op)
	case diagnose.OpNft:
		return checkNftOp(op) // validate_nft.go
	}
	if op.Family != snapshot.FamilyIPv4 && op.Family != snapshot.FamilyIPv6 {
		return "unknown family"
	}
	if !op.Table.IsKnown() {
		return "unknown table"
	}
	if why := checkChainName(string(op.Chain)); why != "" {
		return "chain " + why
	}
	switch op.Kind {
	case diagnose.OpCreateChain:
		if op.Spec != "" {
			return "a chain declaration carries a rule"
		}
		return ""
	case diagnose.OpInsert:
		if op.Position < 1 || op.Position > 1_000_000 {
			return "insert position out of range"
		}
	case diagnose.OpAppend, diagnose.OpDelete:
	default:
		return "unknown operation"
	}
	return checkSpec(op)
}

// checkChainName is iptables' rule for a chain name (libiptc, iptables
// 1.8): 1 to 28 bytes (XT_EXTENSION_MAXNAMELEN - 1), printable ASCII
// without spaces, not starting with "-" or "!" (an option), not a number.
func checkChainName(c string) string {
	switch {
	case c == "":
		return "name is empty"
	case len(c) > 28:
		return "name is longer than 28 bytes"
	case c[0] == '-' || c[0] == '!':
		return "name starts with - or !"
	}
	if _, err := strconv.Atoi(c); err == nil {
		return "name is a number"
	}
	for i := 0; i < len(c); i++ {
		if c[i] <= ' ' || c[i] >= 0x7f || c[i] == '"' || c[i] == '\'' {
			return "name has a space, a quote or a character that is not printable ASCII"
		}
	}
	return ""
}

// checkSpec checks one rule's text.
func checkSpec(op diagnose.Op) string {
	s := op.Spec
	if s == "" {
		return "empty rule"
	}
	if len(s) > 4096 {
		return "rule longer than 4096 bytes"
	}
	for i := 0; i < len(s); i++ {
		if s[i] < ' ' || s[i] == 0x7f {
			return "rule text with a line break or a control character"
		}
	}
	r, err := parse.ParseRuleSpec(op.Table, op.Chain, s)
	if err != nil {
		return "rule does not parse: " + err.Error()
	}
	if len(r.Unparsed) > 0 {
		return "rule has text outside any match: " + strings.Join(r.Unparsed, " ")
	}
	// Why the round trip: the payload line must say exactly what the
	// plan means; a spec that prints back differently was not one rule.
	if r.Spec() != s {
		return "rule does not print back as written"
	}
	for _, v := range []parse.Negatable{r.InIface, r.OutIface} {
		if v.Value != "" {
			if why := snapshot.CheckIfname(v.Value, true); why != "" {
				return why
			}
		}
	}
	for _, v := range []parse.Negatable{r.Source, r.Destination} {
		if v.Value != "" {
			if why := checkAddr(v.Value, op.Family); why != "" {
				return why
			}
		}
	}
	switch r.Protocol.Value {
	case "", "tcp", "udp", "sctp", "icmp", "ipv6-icmp", "icmpv6", "all", "6", "17", "132":
	default:
		return fmt.Sprintf("unexpected protocol %q", r.Protocol.Value)
	}
	if t := string(r.Target); t != "" && !r.Target.IsVerdictOrExtension() {
		if why := checkChainName(t); why != "" {
			return "target " + why
		}
	}
	for _, m := range r.Matches {
		for _, o := range m.Options {
			if why := checkOption(o, op.Family); why != "" {
				return why
			}
		}
	}
	for _, o := range r.TargetOptions {
		switch o.Name {
		case "to-destination", "to-source":
			d, err := parse.ParseNATDest(o.Value())
			if err != nil {
				return err.Error()
			}
			if d.IP != "" {
				if why := checkAddr(d.IP, op.Family); why != "" {
					return why
				}
			}
		case "to-ports":
			if why := checkPorts(o.Value()); why != "" {
				return why
			}
		}
	}
	return ""
}

var portList = regexp.MustCompile(`^\d{1,5}(:\d{1,5})?(,\d{1,5}(:\d{1,5})?)*$`)

// checkPorts accepts "80", "7000:7002", "80,443" with every port 0-65535
// (iptables' own syntax in a rule; Docker writes 1-65535).
func checkPorts(v string) string {
	v = strings.ReplaceAll(v, "-", ":")
	if !portList.MatchString(v) {
		return fmt.Sprintf("port %q is not a number or range", v)
	}
	for _, f := range strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ':' }) {
		if n, _ := strconv.Atoi(f); n > 65535 {
			return fmt.Sprintf("port %s out of range", f)
		}
	}
	return ""
}

func checkOption(o parse.Option, family string) string {
	switch o.Name {
	case "dport", "sport", "dports", "sports", "destination-port", "source-port", "destination-ports", "source-ports", "ctorigdstport":
		return checkPorts(o.Value())
	case "ctorigdst", "ctorigsrc":
		return checkAddr(o.Value(), family)
	case "physdev-in", "physdev-out":
		return snapshot.CheckIfname(o.Value(), true)
	case "comment":
		if len(o.Value()) > 255 {
			return "comment longer than 255 bytes (xt_comment)"
		}
	}
	return ""
}

// checkAddr accepts an address or prefix of the family.
func checkAddr(v, family string) string {
	a, err := netip.ParseAddr(v)
	if err != nil {
		p, perr := netip.ParsePrefix(v)
		if perr != nil {
			return fmt.Sprintf("address %q does not parse", v)
		}
		a = p.Addr()
	}
	if a.Is4() != (family == snapshot.FamilyIPv4) || a.Zone() != "" {
		return fmt.Sprintf("address %s is not an %s address", v, family)
	}
	return ""
}

var sysctlName = regexp.MustCompile(`^net\.(ipv4\.ip_forward|ipv6\.conf\.all\.forwarding|bridge\.bridge-nf-call-ip6?tables|ipv4\.conf\.([^/]+)\.route_localnet)$`)

// checkSysctl accepts the sysctls a plan may write: forwarding, br_netfilter
// and route_localnet of a valid interface name, value 0 or 1.
func checkSysctl(op diagnose.Op) string {
	m := sysctlName.FindStringSubmatch(op.Name)
	if m == nil {
		return "not a sysctl a repair writes"
	}
	if m[2] != "" {
		// Why not a dot: /proc/sys uses "/" for the "." in the name; an
		// interface name with a dot ("eth0.10") appears as is.
		if why := snapshot.CheckIfname(m[2], false); why != "" {
			return why
		}
	}
	if op.Value != "0" && op.Value != "1" {
		return "value is not 0 or 1"
	}
	return ""
}
