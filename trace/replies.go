package trace

import (
	"net/netip"
	"slices"

	"github.com/iptscope/iptscope/parse"
)

// replyForwardStop walks the forward hook for the reply of a forwarded
// connection to a container (from the container's address and port, in
// on its bridge, back to the sender, an established packet: conntrack
// undoes the DNAT only after the forward hook) and returns the step that
// drops it, also kept in the result's ReplyStop, or nil when the reply
// gets through (a "-I FORWARD -i docker0 -j REJECT" kills every published
// port with no drop on the way in).
func (e *engine) replyForwardStop(pk *pkt) *Step {
	back := e.res.Packet.InIface
	if back == "" || pk.out == "" {
		return nil // sent by the host itself: the reply is delivered locally
	}
	if !slices.ContainsFunc(e.res.Steps, func(s Step) bool { return s.Hook == HookForward }) {
		return nil // switched without iptables (br_netfilter off): so is the reply
	}
	// Why a scratch Result: the reply of every published port is walked,
	// and a ports table reuses its Result (and so this one) per trace.
	sr := e.res.scratch
	if sr == nil {
		sr = &Result{Names: map[string]string{}}
		e.res.scratch = sr
	} else {
		clear(sr.Names)
		*sr = Result{Names: sr.Names, Steps: sr.Steps[:0], replies: sr.replies}
	}
	sr.Decider, sr.lean = -1, e.lean
	r := replyOf(pk, HookForward)
	r.out, r.bridged = back, pk.bridged
	if pk.bridged {
		r.out = pk.out // switched back over the same bridge
	}
	// Why shared: a ports table walks the reply of every published port,
	// and where no rule on the forward hook looks at a packet's source,
	// the replies of one bridge's containers to one client are walked
	// alike (see sourceBlind).
	var k replyKey
	shared := e.lean && e.pick != nil && e.pick.sourceBlind(e.Tracer, e.v4)
	if shared {
		k = replyKey{proto: r.proto, dst: r.dst, dport: r.dport, in: r.in, out: r.out, bridged: r.bridged}
		if st, ok := sr.replies[k]; ok {
			e.res.ReplyStop = st
			return st
		}
	}
	sub := e.replyEngine(sr, e.lean)
	var stop *Step
	switch sub.hook(HookForward, r, parse.TableMangle, parse.TableFilter, parse.TableSecurity) {
	case outDrop, outReject:
		if d := sub.res.Decider; d >= 0 && d < len(sub.res.Steps) {
			st := sub.res.Steps[d]
			stop = &st
		}
	}
	if shared {
		if sr.replies == nil {
			sr.replies = map[replyKey]*Step{}
		}
		sr.replies[k] = stop
	}
	e.res.ReplyStop = stop
	return stop
}

// replyKey is what a reply's walk depends on when no rule looks at its
// source (see sourceBlind).
type replyKey struct {
	proto   string
	dst     netip.Addr
	dport   uint16
	in, out string
	bridged bool
}

// sourceBlind reports whether no rule on the forward hook of the
// trace's family can tell two packets apart by their source address or
// port (then two replies that differ only there are walked alike). It
// is a list of what is known to look elsewhere: a rule with anything
// else (-s, a source port, a set, physdev, an unknown match, tokens the
// parser did not place) makes it false, and so do native nftables
// tables (their rules are not read for this).
func (t *Tracer) sourceBlind(dumps []dumpRef, v4 bool) bool {
	if len(t.nftTables(v4)) > 0 {
		return false
	}
	for _, d := range dumps {
		for _, tn := range []parse.TableName{parse.TableMangle, parse.TableFilter, parse.TableSecurity} {
			tab := d.rs.Table(tn)
			if tab == nil {
				continue
			}
			for _, c := range tab.Chains {
				for _, r := range c.Rules {
					if !ruleSourceBlind(r) {
						return false
					}
				}
			}
		}
	}
	return true
}

// ruleSourceBlind reports whether r certainly does not look at a
// packet's source address or port.
func ruleSourceBlind(r *parse.Rule) bool {
	if r.Source.Value != "" || len(r.Unparsed) > 0 {
		return false
	}
	for _, m := range r.Matches {
		for _, o := range m.Options {
			if !optionSourceBlind(m.Name, o.Name) {
				return false
			}
		}
	}
	return true
}

// optionSourceBlind lists the options of matches that look only at the
// destination, the interfaces, the protocol, the connection's state or
// the marks.
func optionSourceBlind(match, opt string) bool {
	switch match {
	case "comment", "nfacct", "mark", "connmark", "state", "pkttype":
		return true
	case "tcp", "udp", "sctp", "udplite", "dccp":
		return opt != "sport" && opt != "source-port"
	case "multiport":
		return opt == "dports" || opt == "destination-ports"
	case "addrtype":
		return opt == "dst-type" || opt == "limit-iface-in" || opt == "limit-iface-out"
	case "conntrack":
		return opt == "ctstate" || opt == "ctstatus" || opt == "ctproto" || opt == "ctdir"
	case "iprange":
		return opt == "dst-range"
	}
	return false
}

// replyOf is the reply of pk's connection as it comes back in on pk's
// output interface at hook h: addresses and ports swapped, established,
// its connection's original direction pk's (out and bridged are the
// caller's).
func replyOf(pk *pkt, h Hook) *pkt {
	return &pkt{proto: pk.proto, src: pk.dst, dst: pk.src, sport: pk.dport, dport: pk.sport, in: pk.out, state: StateEstablished,
		origSrc: pk.dst, origDst: pk.src, origSport: pk.dport, origDport: pk.sport, hook: h}
}

// replyEngine is an engine that walks a reply of e's trace into res: the
// same family, dumps and conntrack, a budget of its own.
func (e *engine) replyEngine(res *Result, lean bool) *engine {
	return &engine{Tracer: e.Tracer, proto: e.proto, v4: e.v4, dumps: e.dumps, noConntrack: e.noConntrack,
		budget: minEvaluations + evaluationsPerRule*e.ruleCount, res: res, lean: lean}
}
