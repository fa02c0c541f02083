// Package nft is a native nftables ruleset model read from `nft -j list
// ruleset` (libnftables' JSON, schema version 1). It is pure: bytes in,
// model out; no exec, no netlink.
//
// The model is lossless in the sense of the iptables model (package parse):
// every object keeps its raw JSON and its place in the input, so Ruleset.JSON
// gives back the input's objects in order, and every rule keeps its handle,
// its expressions in order and a text form derived from them (Rule.Text, as
// `nft list ruleset` prints it; Rule.Spec, the same with bare counters, as
// one writes it in `nft -f`). Expressions, operands and statements it does
// not know are kept as raw JSON (Expr.Raw, Operand.Raw) and printed
// generically.
//
// The tree, for walkers (the graph, the packet tracer):
//
//	Ruleset ─ Tables ─┬─ Chains ─ Rules ─ Exprs (Match, Verdict, VMap, NAT, Counter, ...)
//	                  └─ Sets (sets and maps; a verdict map's elements hold Verdicts)
//
// A chain's successors are Table.Targets(chain): the chains its rules jump or
// goto, directly or through a verdict map, named or anonymous.
//
// Tables written by iptables-nft appear here too, but their matches and
// targets are `xt` stubs without options (libnftables does not decode
// them): read those tables with iptables-nft-save (package parse).
package nft

import "encoding/json"

// Family is an nftables address family.
type Family string

// The families of nftables.
const (
	FamilyIP     Family = "ip"
	FamilyIP6    Family = "ip6"
	FamilyInet   Family = "inet"
	FamilyARP    Family = "arp"
	FamilyBridge Family = "bridge"
	FamilyNetdev Family = "netdev"
)

// Ruleset is one `nft -j list ruleset` document.
type Ruleset struct {
	// Version is metainfo.version ("1.0.6"), SchemaVersion
	// metainfo.json_schema_version; zero values when absent.
	Version       string
	SchemaVersion int
	Tables        []*Table
	// Objects are every top-level object of the input in order, each with
	// its kind ("metainfo", "table", "chain", "rule", "set", "map",
	// "element", "flowtable", "counter", ...) and raw JSON. Objects of
	// kinds the model does not know are only here.
	Objects []Object
}

// Object is one element of the input's "nftables" array.
type Object struct {
	Kind string
	Raw  json.RawMessage
}

// Table is one nftables table.
type Table struct {
	Family Family
	Name   string
	Handle int
	Flags  []string
	Chains []*Chain
	// Sets holds the table's named sets and maps in input order.
	Sets []*Set
	Raw  json.RawMessage
}

// Chain is one chain. A base chain has a Type and a Hook; a regular chain
// (only reached by jump or goto) has neither.
type Chain struct {
	Family Family
	Table  string
	Name   string
	Handle int
	// Type is "filter", "nat" or "route"; "" for a regular chain.
	Type string
	// Hook is "prerouting", "input", "forward", "output", "postrouting",
	// "ingress", "egress"; "" for a regular chain.
	Hook string
	// Priority is the hook priority (numeric, as the JSON gives it: filter
	// is 0, dstnat -100, srcnat 100, raw -300); meaningful for base chains.
	Priority int
	// Policy is "accept" or "drop" for a base chain, "" otherwise.
	Policy string
	// Device(s) of netdev/ingress chains, kept as text.
	Devices []string
	Rules   []*Rule
	Raw     json.RawMessage
}

// IsBase reports whether c is attached to a hook.
func (c *Chain) IsBase() bool { return c != nil && c.Hook != "" }

// Rule is one rule of a chain.
type Rule struct {
	Family Family
	Table  string
	Chain  string
	// Handle is the kernel's rule handle (stable for the rule's life; what
	// `nft delete rule ... handle N` names). 0 when the input had none.
	Handle int
	// Index is the rule's position in its chain, from 0.
	Index   int
	Comment string
	Exprs   []Expr
	Raw     json.RawMessage
}

// ExprKind names an expression (statement) of a rule.
type ExprKind string

// The expression kinds the model decodes; any other is kept with its JSON
// key as Kind and only Raw.
const (
	KindMatch      ExprKind = "match"
	KindCounter    ExprKind = "counter"
	KindAccept     ExprKind = "accept"
	KindDrop       ExprKind = "drop"
	KindReturn     ExprKind = "return"
	KindContinue   ExprKind = "continue"
	KindJump       ExprKind = "jump"
	KindGoto       ExprKind = "goto"
	KindVMap       ExprKind = "vmap"
	KindDNAT       ExprKind = "dnat"
	KindSNAT       ExprKind = "snat"
	KindMasquerade ExprKind = "masquerade"
	KindRedirect   ExprKind = "redirect"
	KindXT         ExprKind = "xt"
)

// Expr is one expression (statement) of a rule. Exactly the field that
// belongs to its Kind is set (Match, Verdict, VMap, NAT, Counter); Raw is
// always the expression's JSON object.
type Expr struct {
	Kind    ExprKind
	Match   *Match
	Verdict *Verdict
	VMap    *VMap
	NAT     *NAT
	Counter *Counter
	Raw     json.RawMessage
}

// Match is a relational expression: Left Op Right. Op is "==", "!=", "<",
// ">", "<=", ">=", "in" (a set or flags), as the JSON gives it.
type Match struct {
	Op    string
	Left  Operand
	Right Operand
}

// Negated reports whether the match is an inequality ("!=").
func (m *Match) Negated() bool { return m.Op == "!=" }

// Operand is one side of a match, a verdict-map key or a NAT address.
//
// Selector names what is read, in nft's own words ("iifname", "ip daddr",
// "tcp dport", "fib daddr type", "ct state", "meta l4proto",
// "ct original proto-dst"); "" for a literal. Value is a literal's text
// without quotes ("docker0", "172.17.0.2", "127.0.0.0/8", "8080",
// "established,related", "{ 80, 443 }", "@myset").
type Operand struct {
	Selector string
	Value    string
	Raw      json.RawMessage
}

// Verdict is a verdict statement or a verdict-map element's data. Kind is
// "accept", "drop", "return", "continue", "jump", "goto", "queue"; Target
// the chain of jump and goto.
type Verdict struct {
	Kind   string
	Target string
}

// IsChainTarget reports whether the verdict enters another chain.
func (v *Verdict) IsChainTarget() bool {
	return v != nil && (v.Kind == "jump" || v.Kind == "goto")
}

// VMap is a verdict-map lookup: `KEY vmap @MAP` or `KEY vmap { k : v, ... }`.
type VMap struct {
	Key Operand
	// Map is the named map (without "@"); "" for an anonymous one, whose
	// elements are in Elements.
	Map      string
	Elements []Element
}

// NAT is a dnat, snat, masquerade or redirect statement. Addr and Port are
// text ("172.17.0.2", "80"); either may be empty. Family is set in inet
// tables ("dnat ip to ...").
type NAT struct {
	Family string
	Addr   string
	Port   string
	Flags  []string
}

// Counter is a counter statement's values; Name is set for a named counter
// reference (no values then).
type Counter struct {
	Packets, Bytes uint64
	Name           string
}

// Set is a named set or map of a table.
type Set struct {
	Family Family
	Table  string
	Name   string
	Handle int
	// IsMap: declared as a map (JSON "map" object); DataType is then the
	// map's data type ("verdict" for a verdict map, "ipv4_addr", ...).
	IsMap    bool
	DataType string
	// KeyType is the key type ("ifname", "ipv4_addr", "ifname . inet_service").
	KeyType  string
	Flags    []string
	Elements []Element
	Raw      json.RawMessage
}

// IsVerdictMap reports whether s maps keys to verdicts.
func (s *Set) IsVerdictMap() bool { return s != nil && s.IsMap && s.DataType == "verdict" }

// Element is one element of a set or map: Key as text without quotes
// ("docker0", "10.0.0.0/8"); for a map, Data as text and, for a verdict
// map, Verdict.
type Element struct {
	Key     string
	Data    string
	Verdict *Verdict
	Raw     json.RawMessage
}
