package diagnose

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/iptscope/iptscope/parse"
)

// dockerUserDrop: a rule in filter DOCKER-USER that drops or rejects
// traffic on its way to a published port. DOCKER-USER is where Docker
// wants administrators' policy, so this is usually deliberate: info, and
// never repaired. It says which ports a rule reaches, which is what people
// get wrong (docker-facts.md field failure 11):
//
//	client -> host:8080 --DNAT--> 172.17.0.2:80 -> FORWARD -> DOCKER-USER
//	                                               (matches see the container
//	                                               address and port, or the
//	                                               original ones via conntrack)
//
// A rule counts when each of its matches can match such a packet: -o the
// port's bridge (or absent), -i anything but that bridge, -d the
// container's address, --dport the container port, conntrack
// --ctorigdstport the host port or --ctorigdst the host address, -p its
// protocol; -s and --ctstate NEW only narrow whom it hits. Rules with other
// matches, and rules after an unconditional RETURN (dead), are left out.
var dockerUserDrop = Check{
	ID:       "docker-user-drop",
	Title:    "A DOCKER-USER rule drops traffic to published ports",
	Severity: SeverityInfo,
	Repair:   Repair{Manual: "DOCKER-USER belongs to the administrator: its rules are deliberate and never changed"},
	Run:      withNft(perFamily(dockerUserDropOf), nftUserDrop),
}

// dockerUserDropOf is docker-user-drop for one family's rules.
func dockerUserDropOf(env *Env, a analysis) []Finding {
	s := env.S
	_ = s
	chain := a.rs.Table(parse.TableFilter).Chain(ChainDockerUser)
	if chain == nil {
		return nil
	}
	// Why first: DOCKER-USER holds no DROP on most hosts, and the list of
	// ports below costs 5 MB of copying at 33,000 ports.
	if !slices.ContainsFunc(chain.Rules, func(r *parse.Rule) bool {
		return r.Target == parse.TargetDrop || r.Target == parse.TargetReject
	}) {
		return nil
	}
	// The published ports, as FORWARD sees them after DNAT.
	var ports []*ExpectedRule
	seen := map[string]bool{}
	dnats := a.exp.RulesOf(parse.TableNAT, ChainDocker)
	for i := range dnats {
		er := &dnats[i]
		if er.Kind != KindDNAT || er.Port == nil || isLoopback(er.Port.HostIP) {
			continue
		}
		if er.Alt != "" {
			if seen[er.Alt] {
				continue
			}
			seen[er.Alt] = true
		}
		ports = append(ports, er)
	}
	bridges := a.bridgeNames()
	// The engine's verdicts: the ports whose connection from another
	// machine a DOCKER-USER rule stops.
	stopped := env.stoppedBy(a.family(), string(parse.TableFilter), string(ChainDockerUser))
	var out []Finding
	for _, r := range chain.Rules {
		if r.Target == parse.TargetReturn && len(r.Matches) == 0 && r.Source.IsZero() && r.Destination.IsZero() &&
			r.InIface.IsZero() && r.OutIface.IsZero() && r.Protocol.IsZero() {
			break // everything below is never reached
		}
		if r.Target != parse.TargetDrop && r.Target != parse.TargetReject {
			continue
		}
		var hit []string
		for _, er := range ports {
			if userRuleHits(r, *er, bridges) {
				dest, _ := parse.ParseNATDest(er.NATTo())
				hit = append(hit, fmt.Sprintf("%s -> %s (container %s)", portName(er.Port), net.JoinHostPort(dest.IP, strconv.Itoa(er.Port.ContainerPort)), er.Container))
			}
		}
		for _, p := range stopped[r.Position] {
			if !slices.ContainsFunc(hit, func(h string) bool { return strings.HasPrefix(h, p.Port+" ") }) {
				hit = append(hit, fmt.Sprintf("%s (container %s)", p.Port, p.Container))
			}
		}
		if len(hit) == 0 {
			continue
		}
		verb := "drops"
		if r.Target == parse.TargetReject {
			verb = "rejects"
		}
		who := "every client"
		if !r.Source.IsZero() {
			who = "clients matching -s " + r.Source.String()
		}
		ev := []string{fmt.Sprintf("rule %d of filter DOCKER-USER: %s", r.Position, a.evSave(r.SaveLine(false)))}
		if r.Counters != nil {
			ev = append(ev, fmt.Sprintf("it has matched %d packets", r.Counters.Packets))
		}
		for _, h := range hit {
			ev = append(ev, "published port it reaches: "+h)
		}
		if ps := stopped[r.Position]; len(ps) > 0 {
			ev = append(ev, fmt.Sprintf("a connection from another machine to %s stops at this rule (`iptscope trace` shows the path)", portsList(ps, 6)))
		}
		out = append(out, Finding{
			ID:       "docker-user-drop",
			Severity: SeverityInfo,
			Title:    fmt.Sprintf("DOCKER-USER rule %d %s traffic to %d published port(s)%s", r.Position, verb, len(hit), a.famTitle()),
			Detail: "This rule " + verb + " forwarded connections from " + who + " to the published ports listed in " +
				"the evidence (and any other matching traffic of the containers). DOCKER-USER is where Docker expects " +
				"administrators' filtering, so this is usually deliberate; it is reported so that a port that does not " +
				"answer from outside can be traced to it. Connections to 127.0.0.1 on the host go through docker-proxy " +
				"and are not filtered here.",
			Subject:  Subject{Table: "filter", Chain: "DOCKER-USER", Port: strings.Join(portList(hit), ","), Family: a.family()},
			Evidence: ev,
			Fix: "Not repaired automatically: it is an administrator's rule. If it is not meant to block these ports, " +
				"change or delete it (`" + a.ipt() + " -D DOCKER-USER " + r.Spec() + "`) and remove it from the script or " +
				"saved ruleset that adds it. Match the post-DNAT container port, or the original port with " +
				"`-m conntrack --ctorigdstport HPORT`, and accept ESTABLISHED,RELATED first.",
		})
	}
	return out
}

// portList returns the "HOSTPORT/PROTO" part of each hit line.
func portList(hit []string) []string {
	var out []string
	for _, h := range hit {
		p, _, _ := strings.Cut(h, " ")
		out = append(out, p)
	}
	return out
}

// userRuleHits reports whether DOCKER-USER rule r can match the forwarded
// packets of the published port whose DNAT rule is er, coming from outside
// the host (bridges are Docker's bridges: "-i BRIDGE" is containers' own
// traffic, which is not what this check is about).
func userRuleHits(r *parse.Rule, er ExpectedRule, bridges []string) bool {
	if r.Protocol.Negated || r.Destination.Negated || r.OutIface.Negated || !r.Fragment.IsZero() {
		return false
	}
	dest, err := parse.ParseNATDest(er.NATTo())
	if err != nil {
		return false
	}
	pr := proto(*er.Port)
	if p := r.Proto(); p != "" && p != pr {
		return false
	}
	if !r.OutIface.IsZero() && !ifaceMatches(r.OutIface.Value, er.Bridge) {
		return false
	}
	// "! -i X" can always match traffic from some uplink; "-i X" only
	// when X is not one of Docker's bridges.
	if !r.InIface.IsZero() && !r.InIface.Negated {
		for _, b := range bridges {
			if ifaceMatches(r.InIface.Value, b) {
				return false
			}
		}
	}
	if !r.Destination.IsZero() && !inSubnet(r.Destination.Value, dest.IP+"/32") {
		return false
	}
	for _, m := range r.Matches {
		switch {
		case m.Name == "comment":
		case portMatches(m.Name) || m.Name == "multiport":
			if m.Name != pr && m.Name != "multiport" {
				return false
			}
			for _, o := range m.Options {
				switch o.Name {
				case "dport", "destination-port", "dports", "destination-ports", "ports":
					if inPortList(o.Value(), er.Port.ContainerPort) == o.Negated {
						return false
					}
				default:
					return false // source ports, flags: cannot tell
				}
			}
		case m.Name == "conntrack" || m.Name == "state":
			for _, o := range m.Options {
				switch o.Name {
				case "ctstate", "state":
					if o.Negated || !strings.Contains(o.Value(), "NEW") {
						return false
					}
				case "ctorigdstport":
					if inPortList(o.Value(), er.Port.HostPort) == o.Negated {
						return false
					}
				case "ctorigdst":
					if !origDstMatches(o.Value(), er.Port.HostIP) || o.Negated {
						return false
					}
				case "ctproto":
					if (o.Value() != pr && o.Value() != protoNumber(pr)) != o.Negated {
						return false
					}
				default:
					return false
				}
			}
		default:
			return false
		}
	}
	return true
}

// inPortList reports whether port is in an iptables port list
// ("80", "7000:7002", "80,443").
func inPortList(list string, port int) bool {
	for item := range strings.SplitSeq(list, ",") {
		from, to, isRange := strings.Cut(strings.TrimSpace(item), ":")
		lo, hi := atoiOr(from, 0), atoiOr(from, -1)
		if isRange {
			hi = atoiOr(to, 65535)
		}
		if port >= lo && port <= hi {
			return true
		}
	}
	return false
}

func atoiOr(s string, def int) int {
	n := 0
	if s == "" {
		return def
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return def
		}
		n = n*10 + int(c-'0')
	}
	return n
}

// origDstMatches reports whether conntrack --ctorigdst value can be the
// original destination of a binding on hostIP ("" or 0.0.0.0: any address
// of the host, so any value may match).
func origDstMatches(value, hostIP string) bool {
	if hostIP == "" || hostIP == "0.0.0.0" {
		return true
	}
	p, err := netip.ParsePrefix(parse.CanonicalAddr(value))
	if err != nil {
		return false
	}
	a, err := netip.ParseAddr(hostIP)
	return err == nil && p.Contains(a)
}

func protoNumber(p string) string {
	switch p {
	case "tcp":
		return "6"
	case "udp":
		return "17"
	case "sctp":
		return "132"
	}
	return p
}
