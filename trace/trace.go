// Package trace follows one packet through a host's netfilter hooks, the
// way the kernel does, over a snapshot: the tables registered on each hook
// in priority order (raw, conntrack, mangle, nat dstnat, the routing
// decision, filter, nat srcnat), jumps, gotos, returns and policies, NAT
// rewrites, marks, ipsets, the routing decision from the snapshot's
// addresses and routes, bridged traffic under br_netfilter, and who
// answers on the host (docker-proxy, or dockerd's placeholder that does
// not).
//
// It is pure: a snapshot and a packet in, a Result out. No exec, no files.
//
// It never guesses. A match it cannot decide (an extension it does not
// model, a set the snapshot lacks, state it does not have) makes the
// verdict Unknown with the rule that caused it, unless another match of
// the same rule already fails (then the rule cannot match either way).
//
//	packet ─► PREROUTING raw ─► conntrack ─► mangle ─► nat (DNAT)
//	            │
//	            ▼ routing decision (local addresses, routes, ip_forward)
//	    local ──► INPUT mangle, filter, nat ─► socket (docker-proxy?)
//	    other ──► FORWARD mangle, filter ─► POSTROUTING mangle, nat ─► out
//
// A packet the host sends itself (Packet.InIface "") starts in OUTPUT
// (raw, mangle, nat, filter), is routed, passes POSTROUTING and, when its
// destination is local, comes back in on lo (PREROUTING raw and mangle,
// INPUT; nat is not consulted again: the connection's NAT is set up).
package trace

import (
	"net/netip"

	"github.com/iptscope/iptscope/parse"
)

// Verdict is what netfilter (or the routing decision) does with the packet.
type Verdict string

// Verdicts.
const (
	Accept  Verdict = "accept"
	Drop    Verdict = "drop"
	Reject  Verdict = "reject"
	Unknown Verdict = "unknown"
)

// Reach says where the packet ends up.
type Reach string

// Where a packet can end.
const (
	// ReachContainer: delivered to a container's address.
	ReachContainer Reach = "container"
	// ReachHost: delivered locally (INPUT), to a socket of the host.
	ReachHost Reach = "host"
	// ReachElsewhere: forwarded to an address that is neither the host's
	// nor a container's.
	ReachElsewhere Reach = "elsewhere"
	// ReachNowhere: dropped, rejected, unroutable, or sent to an address
	// nobody has.
	ReachNowhere Reach = "nowhere"
	// ReachUnknown: the tracer could not follow the packet to its end.
	ReachUnknown Reach = "unknown"
)

// State is the packet's conntrack state.
type State string

// Conntrack states a Packet can have.
const (
	// StateNew is a connection's first packet (a TCP SYN).
	StateNew State = "new"
	// StateEstablished is a later packet of a connection in the original
	// direction (a TCP ACK). Its NAT is what the rules give its first
	// packet today: the tracer cannot know older rules.
	StateEstablished State = "established"
)

// Hook is a netfilter hook, named as iptables names its built-in chains.
type Hook string

// The hooks.
const (
	HookPrerouting  Hook = "PREROUTING"
	HookInput       Hook = "INPUT"
	HookForward     Hook = "FORWARD"
	HookOutput      Hook = "OUTPUT"
	HookPostrouting Hook = "POSTROUTING"
)

// Packet is what is traced. Proto is "tcp" or "udp". InIface is the
// interface it arrives on (a bridge port is read as its bridge, the way
// iptables sees it); "" means the host itself sends it.
type Packet struct {
	Proto   string     `json:"proto"`
	Src     netip.Addr `json:"src"`
	SrcPort uint16     `json:"sport"`
	Dst     netip.Addr `json:"dst"`
	DstPort uint16     `json:"dport"`
	InIface string     `json:"in,omitempty"`
	State   State      `json:"state"`
}

// Family is "ipv4" or "ipv6", from the destination address.
func (p Packet) Family() string {
	if p.Dst.Is4() || p.Dst.Is4In6() {
		return "ipv4"
	}
	return "ipv6"
}

// Step is one thing the packet met: a rule that matched (jump, goto,
// verdict, rewrite), a chain's end (return to the caller), a policy, a
// rule the tracer could not decide, or (Hook "" and Table "") a decision
// of the kernel outside netfilter: routing, a socket.
type Step struct {
	Hook    Hook            `json:"hook"`
	Table   parse.TableName `json:"table"`
	Chain   parse.ChainName `json:"chain"`
	Backend string          `json:"backend,omitempty"`
	// Rule is the rule's 1-based position in its chain; 0 for the chain's
	// policy or its end.
	Rule   int    `json:"rule"`
	Target string `json:"target"`
	// Text is the rule as the dump has it, or a sentence for a policy, a
	// chain's end or a kernel decision.
	Text string `json:"text"`
	// Note says what the step did to the packet, with Docker's names
	// ("DNAT → 172.17.0.2:80 (web)").
	Note string `json:"note,omitempty"`
	// Unknown is why the tracer could not decide this rule.
	Unknown string `json:"unknown,omitempty"`
	// Replay marks nat steps of an established packet: the kernel ran
	// them for the connection's first packet, not for this one.
	Replay bool `json:"replay,omitempty"`
	// Line is the rule's line in the dump (0 when not a rule).
	Line int `json:"line,omitempty"`
	// Handle is a native nftables rule's handle (0 otherwise).
	Handle int `json:"handle,omitempty"`
}

// IsKernel reports whether the step is a kernel decision outside the
// iptables tables (routing, a socket, the bridge).
func (s Step) IsKernel() bool { return s.Table == "" }

// Route is the routing decision.
type Route struct {
	// Kind is "local" (delivered to the host), "forward" (routed on),
	// "bridged" (switched by a bridge, br_netfilter sees it) or "none".
	Kind string `json:"kind"`
	// Out is the output interface ("lo" for local delivery).
	Out string `json:"out,omitempty"`
	// Via is the route that decided ("172.17.0.0/16 dev docker0").
	Via string `json:"via,omitempty"`
}

// Result is a trace.
type Result struct {
	// Packet is the packet as given; Final what it became (after DNAT,
	// SNAT, MASQUERADE).
	Packet Packet `json:"packet"`
	Final  Packet `json:"final"`
	// Verdict is accept, drop, reject or unknown.
	Verdict Verdict `json:"verdict"`
	Reaches Reach   `json:"reaches"`
	// Container is the container the packet reaches.
	Container string `json:"container,omitempty"`
	// AnsweredBy is what answers when the packet reaches the host or a
	// container: "docker-proxy pid 123", "dockerd (placeholder: ...)".
	AnsweredBy string `json:"answered_by,omitempty"`
	// Answers: whether something answers; nil when that cannot be told.
	Answers *bool `json:"answers"`
	// Reason says in one sentence why the trace ended as it did.
	Reason string `json:"reason"`
	Route  *Route `json:"route,omitempty"`
	Steps  []Step `json:"steps"`
	// Decider is the index in Steps of the step that decided the verdict
	// (the dropping rule, the unknown match, the routing decision); -1
	// when the packet was accepted all along.
	Decider int `json:"decider"`
	// Backends are the iptables backends whose rules were walked, in
	// order ("nft", "legacy", "" for a plain dump).
	Backends []string `json:"backends"`
	// Notes are assumptions the trace rests on.
	Notes []string `json:"notes,omitempty"`
	// Names are Docker's names for the addresses the trace mentions.
	Names map[string]string `json:"names,omitempty"`
	// ReplyStop is, when the packet reached a container but its reply is
	// dropped on the forward hook, the rule (or policy) that drops the
	// reply (the Reason names it; Steps are the packet's own).
	ReplyStop *Step `json:"-"`
	// scratch is the Result a reply is walked into (reused with this one).
	scratch *Result
	// replies are, on a scratch Result, the reply walks a lean trace
	// shares (see replyForwardStop).
	replies map[replyKey]*Step
	// lean: the trace records only what a verdict needs (ScanPorts): a
	// rule's step keeps its text, but a kernel decision, a chain's end or
	// policy and a rewrite's note have none, and Names holds only the
	// addresses the reason names.
	lean bool
}

// Deciding returns the step that decided the verdict, or nil.
func (r *Result) Deciding() *Step {
	if r == nil || r.Decider < 0 || r.Decider >= len(r.Steps) {
		return nil
	}
	return &r.Steps[r.Decider]
}

// Chains returns the sequence of (hook, table, chain) the packet entered,
// each once per entry, for comparison with the kernel's own trace.
func (r *Result) Chains() []string {
	var out []string
	last := ""
	for _, s := range r.Steps {
		if s.IsKernel() || s.Replay {
			continue
		}
		k := string(s.Hook) + " " + string(s.Table) + " " + string(s.Chain)
		if k != last {
			out = append(out, k)
			last = k
		}
	}
	return out
}
