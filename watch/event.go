// Package watch is the loop of `iptscope watch`: it reacts to ruleset
// changes (nftables generations, or a changed hash of the legacy dump) and
// to Docker's own events, re-checks the host, tells drift from Docker's
// own work, and repairs under a rate limit.
//
// The decisions (when to check, whether findings are drift or Docker's
// change in flight, whether a repair is allowed, which event to emit) are
// made by Machine, which is pure: it takes the time as a value and
// returns what to do, so tests drive it with a fake clock. Run glues
// Machine to channels, timers and the functions that read and repair the
// host.
package watch

import (
	"strconv"
	"time"
)

// Schema is the "schema" value of every JSON line of `iptscope watch -o json`.
const Schema = "iptscope.watch/v1"

// Kind is the kind of an Event.
type Kind string

// The kinds of events watch emits.
const (
	// KindDrift: the host has findings at or above the threshold that
	// Docker's own work does not explain (emitted on the change to such a
	// state, or when the set of findings changes).
	KindDrift Kind = "drift"
	// KindRepaired: a repair was applied and verified.
	KindRepaired Kind = "repaired"
	// KindHealthy: no finding at or above the threshold (at start, and on
	// every return to health).
	KindHealthy Kind = "healthy"
	// KindError: the host could not be read or repaired, or an event
	// source failed.
	KindError Kind = "error"
)

// Process is the process that made a ruleset change, as the kernel's
// nftables generation message names it. PID 0 means unknown (a poll of
// the legacy dump cannot tell).
type Process struct {
	PID  int    `json:"pid"`
	Comm string `json:"comm"`
	// PPID and ParentComm are the parent's, when the process was still
	// alive to be asked (0 and "" otherwise).
	PPID       int    `json:"ppid,omitempty"`
	ParentComm string `json:"parent_comm,omitempty"`
}

// String renders "pid 4242 (iptables-nft)", or "an unknown process".
func (p Process) String() string {
	if p.PID == 0 {
		if p.Comm != "" {
			return p.Comm
		}
		return "an unknown process"
	}
	return "pid " + strconv.Itoa(p.PID) + " (" + p.Comm + ")"
}

// dockerComms are the processes whose ruleset changes are Docker's own:
// dockerd itself (Docker 29's nftables backend runs nft from dockerd's
// own code, and netlink names dockerd for a static build) and what it
// runs.
var dockerComms = map[string]bool{"dockerd": true, "docker-proxy": true}

// IsDocker reports whether p is dockerd or a child of it (iptables and
// nft run by dockerd).
func (p Process) IsDocker() bool { return dockerComms[p.Comm] || dockerComms[p.ParentComm] }

// Change is one ruleset change seen by a source.
type Change struct {
	Time time.Time
	// Source is "nftables" (a netlink generation) or "poll" (the legacy
	// dump's hash changed).
	Source string
	// Generation is the nftables generation ID (0 for a poll).
	Generation uint32
	By         Process
	// What lists what changed, where the source says it ("ip nat DOCKER:
	// 3 rules deleted"); empty for a poll.
	What []string
	// RulesOnly is true when the source saw everything the change did and
	// it only added, deleted or replaced rules of iptables-nft's chains,
	// or changed the policy or counters of their built-in chains: those
	// listed in Chains. Then a re-read of those chains is all the change
	// calls for. False (the zero value, a poll's) means anything may have
	// changed: the host is read in full.
	RulesOnly bool
	Chains    []ChainRef
	// Err is set when the source failed; the other fields are then empty.
	Err error
}

// ChainRef names one iptables chain: the family ("ipv4" or "ipv6", as
// snapshot.RuleDump names them), the table and the chain.
type ChainRef struct {
	Family string
	Table  string
	Chain  string
}

// String renders "ipv4 nat DOCKER".
func (c ChainRef) String() string { return c.Family + " " + c.Table + " " + c.Chain }

// Scope is what a check must read: everything (Full), or only the rules
// of Chains because nothing else changed since the last check that
// succeeded. Host.Check may always read more than it is asked.
type Scope struct {
	Full   bool
	Chains []ChainRef
	// Why says what made it Full ("Docker's container start", "nftables
	// change: ip filter FOO: chain added"), for people.
	Why string
}

// DockerEvent is one of Docker's own events that rewrites rules: a
// container started or stopped, a network created, removed, connected,
// disconnected; or the daemon's event stream reconnecting.
type DockerEvent struct {
	Time   time.Time
	Type   string // "container", "network", "daemon"
	Action string // "start", "die", "create", "connect", ...
	Actor  string // the container's or network's name
}

// Event is one line of watch's output. The JSON field names are
// iptscope.watch/v1 (docs/schema/watch.v1.json) and stable.
type Event struct {
	Schema string    `json:"schema"`
	Time   time.Time `json:"time"`
	Event  Kind      `json:"event"`
	// Findings are the IDs of the findings at or above the threshold,
	// sorted, one per finding (an ID repeats for two causes).
	Findings []string `json:"findings"`
	// Keys are the findings' keys (diagnose.KeyOf), in the same order.
	Keys []string `json:"keys,omitempty"`
	// By is the process that made the change that led to this event, when
	// known.
	By *Process `json:"by,omitempty"`
	// Generation is the nftables generation of that change, when known.
	Generation uint32 `json:"generation,omitempty"`
	// Message says in words what happened ("nat DOCKER flushed by pid
	// 4242 (iptables-nft)", "repairs stopped: ...").
	Message string `json:"message,omitempty"`
}
