// Package parse turns iptables text into a lossless rule model and a chain
// graph. It is pure: bytes in, model out. No exec, no files.
//
// Two input formats are understood and auto-detected (see Parse):
//
//   - iptables-save / ip6tables-save output, with or without -c counters,
//     from either the nft or the legacy backend;
//   - iptables [-t TABLE] -L [CHAIN] -n -v [-x] [--line-numbers] output, as
//     people paste it into tickets, several tables concatenated.
//
// The model keeps everything: each rule keeps its raw text and line number,
// explicit negations, and every option in order, including those this
// package does not understand. Printing a ruleset parsed from save format
// (Ruleset.WriteSave) gives back the input byte for byte.
package parse

// Format is the textual format a Ruleset was parsed from.
type Format string

const (
	// FormatSave is iptables-save / ip6tables-save output.
	FormatSave Format = "save"
	// FormatList is `iptables -L -n -v` output.
	FormatList Format = "list"
)

// TableName names a netfilter table.
type TableName string

// The tables iptables knows.
const (
	TableRaw      TableName = "raw"
	TableMangle   TableName = "mangle"
	TableNAT      TableName = "nat"
	TableFilter   TableName = "filter"
	TableSecurity TableName = "security"
)

// KnownTables lists the tables in the order the kernel's hooks see them
// (raw before mangle before nat before filter before security).
var KnownTables = []TableName{TableRaw, TableMangle, TableNAT, TableFilter, TableSecurity}

// IsKnown reports whether t is one of the tables iptables supports.
func (t TableName) IsKnown() bool {
	for _, k := range KnownTables {
		if t == k {
			return true
		}
	}
	return false
}

// ChainName names a chain within a table.
type ChainName string

// Built-in chains.
const (
	ChainPrerouting  ChainName = "PREROUTING"
	ChainInput       ChainName = "INPUT"
	ChainForward     ChainName = "FORWARD"
	ChainOutput      ChainName = "OUTPUT"
	ChainPostrouting ChainName = "POSTROUTING"
)

// BuiltinChains gives, per table, its built-in chains in hook order.
var BuiltinChains = map[TableName][]ChainName{
	TableRaw:      {ChainPrerouting, ChainOutput},
	TableMangle:   {ChainPrerouting, ChainInput, ChainForward, ChainOutput, ChainPostrouting},
	TableNAT:      {ChainPrerouting, ChainInput, ChainOutput, ChainPostrouting},
	TableFilter:   {ChainInput, ChainForward, ChainOutput},
	TableSecurity: {ChainInput, ChainForward, ChainOutput},
}

// IsBuiltin reports whether c is a built-in chain of table t.
func (c ChainName) IsBuiltin(t TableName) bool {
	for _, b := range BuiltinChains[t] {
		if b == c {
			return true
		}
	}
	return false
}

// Target names what a rule does when it matches: a built-in verdict, a
// target extension (DNAT, MASQUERADE, ...) or a user chain.
type Target string

// Built-in verdicts and the target extensions Docker and kube-proxy use.
const (
	TargetAccept     Target = "ACCEPT"
	TargetDrop       Target = "DROP"
	TargetReturn     Target = "RETURN"
	TargetQueue      Target = "QUEUE"
	TargetReject     Target = "REJECT"
	TargetDNAT       Target = "DNAT"
	TargetSNAT       Target = "SNAT"
	TargetMasquerade Target = "MASQUERADE"
	TargetRedirect   Target = "REDIRECT"
	TargetMark       Target = "MARK"
	TargetLog        Target = "LOG"
	TargetChecksum   Target = "CHECKSUM"
)

// knownTargets are verdicts and target extensions: a rule whose target is
// one of these does not refer to a chain. Anything else that is not a
// declared chain is a dangling jump.
var knownTargets = map[Target]bool{}

func init() {
	for _, t := range []string{
		"ACCEPT", "DROP", "RETURN", "QUEUE", "REJECT", "DNAT", "SNAT", "MASQUERADE",
		"REDIRECT", "NETMAP", "MARK", "CONNMARK", "CONNSECMARK", "SECMARK", "LOG", "NFLOG",
		"ULOG", "NFQUEUE", "CHECKSUM", "CT", "NOTRACK", "TRACE", "TPROXY", "TCPMSS",
		"TCPOPTSTRIP", "TEE", "CLASSIFY", "DSCP", "TOS", "TTL", "HL", "ECN", "SET",
		"AUDIT", "CLUSTERIP", "IDLETIMER", "LED", "SYNPROXY", "HMARK", "RATEEST",
		"SNPT", "DNPT", "SAME", "MIRROR", "JOOL", "JOOL_SIIT", "DNETMAP",
	} {
		knownTargets[Target(t)] = true
	}
}

// IsVerdictOrExtension reports whether t is a built-in verdict or a known
// target extension rather than (possibly) a user chain.
func (t Target) IsVerdictOrExtension() bool { return knownTargets[t] }

// Counters are packet and byte counters.
type Counters struct {
	Packets uint64 `json:"packets"`
	Bytes   uint64 `json:"bytes"`
	// Approximate is set when the input rounded the numbers (iptables -L
	// -v without -x prints 12K, 3M, ...: units of 1000).
	Approximate bool `json:"approximate,omitempty"`
}

// Ruleset is everything parsed from one input: one or more tables.
type Ruleset struct {
	// Format is the format the input was in.
	Format Format `json:"format"`
	// Tables in input order. A name appears at most once.
	Tables []*Table `json:"tables"`
	// Trailer holds the lines after the last table (comments, blank
	// lines) so that WriteSave can reproduce them.
	Trailer []string `json:"-"`
	// CRLF is set when some line of the input ended with CRLF (a dump or
	// listing pasted from Windows). Nothing else in the model depends on it.
	CRLF bool `json:"-"`
}

// Table is one netfilter table.
type Table struct {
	Name TableName `json:"table"`
	// Chains in declaration order (save format) or listing order (list format).
	Chains []*Chain `json:"chains"`
	// Line is the 1-based line of the "*table" header (save) or of the first
	// "Chain" header attributed to this table (list).
	Line int `json:"line"`

	// lines are the body lines (headers, declarations, rules, comments,
	// COMMIT) exactly as read, for lossless printing. Save format only.
	lines []bodyLine
}

// bodyLine is one line of a table as read. Exactly one of rule/chain is set
// when the line declared one.
type bodyLine struct {
	raw   string
	rule  *Rule
	chain *Chain
}

// Chain is a built-in or user-defined chain.
type Chain struct {
	Name ChainName `json:"name"`
	// Builtin is true for the table's built-in chains.
	Builtin bool `json:"builtin"`
	// Policy is the default verdict of a built-in chain ("ACCEPT", "DROP");
	// empty for user chains.
	Policy Target `json:"policy,omitempty"`
	// Counters of the policy (save: ":CHAIN POLICY [p:b]"; list: "policy
	// ACCEPT 0 packets, 0 bytes"). Nil when the input had none.
	Counters *Counters `json:"counters,omitempty"`
	// References is the count shown by `iptables -L` ("(2 references)"),
	// -1 when the input did not say.
	References int `json:"references"`
	// Rules in order; Rule.Position is the 1-based index here.
	Rules []*Rule `json:"rules"`
	// Line is the 1-based line that declared the chain.
	Line int `json:"line"`
}

// Rule is one rule. Fields not given in the input are zero.
type Rule struct {
	// Table and Chain the rule belongs to.
	Table TableName `json:"table"`
	Chain ChainName `json:"chain"`
	// Position is the 1-based position in its chain (what -L --line-numbers shows).
	Position int `json:"position"`
	// Counters are the rule's counters, nil when the input had none.
	Counters *Counters `json:"counters,omitempty"`

	// Protocol is "-p X" as written ("tcp", "6", "all"); empty when absent.
	Protocol    Negatable `json:"protocol,omitzero"`
	Source      Negatable `json:"source,omitzero"`
	Destination Negatable `json:"destination,omitzero"`
	InIface     Negatable `json:"in_interface,omitzero"`
	OutIface    Negatable `json:"out_interface,omitzero"`
	// Fragment is "-f" (true, possibly negated).
	Fragment Negatable `json:"fragment,omitzero"`

	// Matches in order, including implicit protocol matches that were
	// given options without "-m" (e.g. "-p tcp --dport 80" gives a "tcp"
	// match).
	Matches []Match `json:"matches,omitempty"`

	// Target is what the rule jumps or goes to; empty for a rule without
	// -j/-g (it only counts).
	Target Target `json:"target,omitempty"`
	// Goto is true for "-g CHAIN".
	Goto bool `json:"goto,omitempty"`
	// TargetOptions are the target's options in order (e.g. DNAT
	// --to-destination).
	TargetOptions []Option `json:"target_options,omitempty"`

	// Unparsed holds, in order, tokens or text this package could not
	// place (list format extras it does not know; save tokens outside any
	// match). Nothing is ever dropped.
	Unparsed []string `json:"unparsed,omitempty"`

	// Raw is the input line exactly, without the line ending.
	Raw string `json:"raw"`
	// Line is the 1-based line number in the input.
	Line int `json:"line"`
}

// Negatable is a value that may carry an explicit "!".
type Negatable struct {
	Value   string `json:"value,omitempty"`
	Negated bool   `json:"negated,omitempty"`
}

// IsZero reports whether the field was absent.
func (n Negatable) IsZero() bool { return n.Value == "" && !n.Negated }

// String renders the value the way iptables -L does: "!docker0".
func (n Negatable) String() string {
	if n.Negated {
		return "!" + n.Value
	}
	return n.Value
}

// Match is one "-m NAME" module (or an implicit protocol match) with its
// options in order.
type Match struct {
	Name    string   `json:"name"`
	Options []Option `json:"options,omitempty"`
	// Implicit is set when the input gave the options without "-m NAME"
	// (only possible for protocol matches: "-p tcp --dport 80").
	Implicit bool `json:"implicit,omitempty"`
}

// Option is one "--name value..." option of a match or target, with its
// explicit negation. Values are unquoted.
type Option struct {
	Name    string   `json:"name"` // without the leading dashes
	Negated bool     `json:"negated,omitempty"`
	Values  []string `json:"values,omitempty"`
}

// Value returns the option's values joined by a space ("" if none).
func (o Option) Value() string {
	switch len(o.Values) {
	case 0:
		return ""
	case 1:
		return o.Values[0]
	}
	s := o.Values[0]
	for _, v := range o.Values[1:] {
		s += " " + v
	}
	return s
}

// Table returns the named table, or nil.
func (rs *Ruleset) Table(name TableName) *Table {
	if rs == nil {
		return nil
	}
	for _, t := range rs.Tables {
		if t.Name == name {
			return t
		}
	}
	return nil
}

// Chain returns the named chain, or nil.
func (t *Table) Chain(name ChainName) *Chain {
	if t == nil {
		return nil
	}
	for _, c := range t.Chains {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// RuleCount is the number of rules in all chains of the table.
func (t *Table) RuleCount() int {
	n := 0
	for _, c := range t.Chains {
		n += len(c.Rules)
	}
	return n
}

// Match returns the first match with the given module name, or nil.
func (r *Rule) Match(name string) *Match {
	for i := range r.Matches {
		if r.Matches[i].Name == name {
			return &r.Matches[i]
		}
	}
	return nil
}

// Option returns the first option with the given name (without dashes), or nil.
func (m *Match) Option(name string) *Option {
	if m == nil {
		return nil
	}
	for i := range m.Options {
		if m.Options[i].Name == name {
			return &m.Options[i]
		}
	}
	return nil
}

// TargetOption returns the first target option with the given name, or nil.
func (r *Rule) TargetOption(name string) *Option {
	for i := range r.TargetOptions {
		if r.TargetOptions[i].Name == name {
			return &r.TargetOptions[i]
		}
	}
	return nil
}

// JumpsToChain reports whether the rule's target is (or could be) a user
// chain rather than a verdict or target extension.
func (r *Rule) JumpsToChain() bool {
	return r.Target != "" && !r.Target.IsVerdictOrExtension()
}
