package collect

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
)

// Reading iptables-nft's rules over netlink, printed as iptables-nft-save.
//
// Why: on a host of 100,000 rules, iptables-nft-save -c takes 1.5 s, of
// which about 1.0 s is kernel time. iptables-nft-save (1.8.9) asks for
// each chain's rules in a dump of its own, one chain after the other. The
// kernel answers a dump in batches of at most 32 KiB (about 65 rules) and
// starts each batch by walking the chain from its first rule up to where
// the last batch stopped, so a chain of n rules costs about n² / 130 steps:
// the 33,000-rule DOCKER chains of a big host cost most of that second.
// nftSave asks for the same dumps, but runs them at once on every core,
// and decodes them in Go without a translation to xtables structures (0.1
// s of CPU at 100,000 rules, against 0.45 s for the tool).
//
// The text is what iptables-nft-save -c prints for the same ruleset, byte
// for byte but for the "#" comment lines (TestNftSaveIsIptablesNftSave
// loads every fixture's rules into a namespace and compares the two). It
// is printed only for the rules whose kernel form is one that iptables-nft
// itself writes and that nftSave knows: the addresses, interfaces,
// protocol and ports iptables-nft translates into native expressions, the
// conntrack, addrtype and comment matches, the verdicts, jumps and gotos,
// and the DNAT and MASQUERADE targets. Anything else (another match or
// target, a set, a table iptables-nft did not make) is errNftSaveUnknown,
// and the caller runs iptables-nft-save itself: the reader is a shortcut,
// never a second opinion.

// errNftSaveUnknown says a ruleset holds something nftSave does not print.
var errNftSaveUnknown = errors.New("not printable by the netlink reader")

// unknownf wraps errNftSaveUnknown with what was met.
func unknownf(format string, a ...any) error {
	return fmt.Errorf("%w: %s", errNftSaveUnknown, fmt.Sprintf(format, a...))
}

// Netlink constants of nf_tables (linux/netfilter/nf_tables.h).
const (
	nfnlSubsysNftables = 10

	nftMsgNewTable = 0
	nftMsgGetTable = 1
	nftMsgNewChain = 3
	nftMsgGetChain = 4
	nftMsgNewRule  = 6
	nftMsgGetRule  = 7
	nftMsgNewGen   = 15
	nftMsgGetGen   = 16

	nfprotoIPv4 = 2
	nfprotoIPv6 = 10

	nlaTypeMask = 0x3fff
)

// Attributes.
const (
	nftaTableName  = 1
	nftaTableFlags = 2

	nftaChainTable    = 1
	nftaChainName     = 3
	nftaChainHook     = 4
	nftaChainPolicy   = 5
	nftaChainType     = 7
	nftaChainCounters = 8
	nftaChainFlags    = 10

	nftaHookHooknum  = 1
	nftaHookPriority = 2

	nftaCounterBytes   = 1
	nftaCounterPackets = 2

	nftaRuleTable       = 1
	nftaRuleChain       = 2
	nftaRuleExpressions = 4
	nftaRuleUserdata    = 7

	nftaListElem = 1
	nftaExprName = 1
	nftaExprData = 2

	nftaDataValue   = 1
	nftaDataVerdict = 2

	nftaVerdictCode  = 1
	nftaVerdictChain = 2

	nftaGenID = 1
)

// Verdict codes (linux/netfilter.h, nf_tables.h).
const (
	verdictDrop   = 0
	verdictAccept = 1
	verdictJump   = -3
	verdictGoto   = -4
	verdictReturn = -5
)

// nlAttrs calls f with each attribute of b (type without the nested and
// byte-order flags); a malformed list is an error.
func nlAttrs(b []byte, f func(typ uint16, v []byte) error) error {
	for len(b) >= 4 {
		n := int(binary.NativeEndian.Uint16(b))
		typ := binary.NativeEndian.Uint16(b[2:]) & nlaTypeMask
		if n < 4 || n > len(b) {
			return fmt.Errorf("malformed netlink attribute (length %d of %d)", n, len(b))
		}
		if err := f(typ, b[4:n]); err != nil {
			return err
		}
		a := (n + 3) &^ 3
		if a > len(b) {
			a = len(b)
		}
		b = b[a:]
	}
	return nil
}

func be32(v []byte) uint32 {
	if len(v) < 4 {
		return 0
	}
	return binary.BigEndian.Uint32(v)
}

func be64(v []byte) uint64 {
	if len(v) < 8 {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}

// cstr is a NUL-terminated netlink string.
func cstr(v []byte) string {
	if i := bytes.IndexByte(v, 0); i >= 0 {
		v = v[:i]
	}
	return string(v)
}

// nftCounters is a packet and byte count.
type nftCounters struct{ packets, bytes uint64 }

func parseCounters(v []byte) (c nftCounters, err error) {
	err = nlAttrs(v, func(t uint16, v []byte) error {
		switch t {
		case nftaCounterBytes:
			c.bytes = be64(v)
		case nftaCounterPackets:
			c.packets = be64(v)
		}
		return nil
	})
	return c, err
}

// nftSaveChain is one chain of an iptables-nft table as the kernel says.
type nftSaveChain struct {
	name     string
	base     bool
	hook     uint32
	prio     int32
	typ      string
	policy   uint32
	counters nftCounters
	flags    uint32
}

// parseTableMsg is a NEWTABLE message's name and flags.
func parseTableMsg(attrs []byte) (name string, flags uint32, err error) {
	err = nlAttrs(attrs, func(t uint16, v []byte) error {
		switch t {
		case nftaTableName:
			name = cstr(v)
		case nftaTableFlags:
			flags = be32(v)
		}
		return nil
	})
	return name, flags, err
}

// parseChainMsg is a NEWCHAIN message's table and chain.
func parseChainMsg(attrs []byte) (table string, c nftSaveChain, err error) {
	err = nlAttrs(attrs, func(t uint16, v []byte) error {
		switch t {
		case nftaChainTable:
			table = cstr(v)
		case nftaChainName:
			c.name = cstr(v)
		case nftaChainHook:
			c.base = true
			return nlAttrs(v, func(t uint16, v []byte) error {
				switch t {
				case nftaHookHooknum:
					c.hook = be32(v)
				case nftaHookPriority:
					c.prio = int32(be32(v))
				}
				return nil
			})
		case nftaChainPolicy:
			c.policy = be32(v)
		case nftaChainType:
			c.typ = cstr(v)
		case nftaChainCounters:
			var err error
			c.counters, err = parseCounters(v)
			return err
		case nftaChainFlags:
			c.flags = be32(v)
		}
		return nil
	})
	return table, c, err
}

// xtBuiltin is a built-in chain of an iptables table as iptables-nft
// makes it: its hook, priority and type. A base chain that differs is not
// iptables-nft's (iptables-nft-save calls such a table incompatible).
type xtBuiltin struct {
	name string
	hook uint32
	prio int32
	typ  string
}

// Hook numbers (linux/netfilter.h).
const (
	hookPrerouting  = 0
	hookInput       = 1
	hookForward     = 2
	hookOutput      = 3
	hookPostrouting = 4
)

// xtTables are iptables-nft's tables, in the order iptables-nft-save
// 1.8.9 prints them, each with its built-in chains in print order.
var xtTables = []struct {
	name   string
	chains []xtBuiltin
}{
	{"mangle", []xtBuiltin{{"PREROUTING", hookPrerouting, -150, "filter"}, {"INPUT", hookInput, -150, "filter"}, {"FORWARD", hookForward, -150, "filter"}, {"OUTPUT", hookOutput, -150, "route"}, {"POSTROUTING", hookPostrouting, -150, "filter"}}},
	{"security", []xtBuiltin{{"INPUT", hookInput, 50, "filter"}, {"FORWARD", hookForward, 50, "filter"}, {"OUTPUT", hookOutput, 50, "filter"}}},
	{"raw", []xtBuiltin{{"PREROUTING", hookPrerouting, -300, "filter"}, {"OUTPUT", hookOutput, -300, "filter"}}},
	{"filter", []xtBuiltin{{"INPUT", hookInput, 0, "filter"}, {"FORWARD", hookForward, 0, "filter"}, {"OUTPUT", hookOutput, 0, "filter"}}},
	{"nat", []xtBuiltin{{"PREROUTING", hookPrerouting, -100, "nat"}, {"INPUT", hookInput, 100, "nat"}, {"OUTPUT", hookOutput, -100, "nat"}, {"POSTROUTING", hookPostrouting, 100, "nat"}}},
}

// nftSaveTable is one iptables-nft table: its chains in print order.
// A built-in chain the kernel lacks (iptables-nft makes them as rules
// need them) is there as iptables-nft-save prints it, an empty ACCEPT
// chain, with absent set: it has no rules to read.
type nftSaveTable struct {
	name   string
	chains []nftSaveChain
	absent []bool
}

// orderTables checks that the tables and chains read are iptables-nft's
// and puts them in iptables-nft-save's order: tables as xtTables, built-in
// chains as there, then the user chains by name. A table that is not one
// of iptables-nft's names is left out, as iptables-nft-save leaves it.
func orderTables(names map[string]uint32, chains map[string][]nftSaveChain) ([]nftSaveTable, error) {
	var out []nftSaveTable
	for _, xt := range xtTables {
		flags, ok := names[xt.name]
		if !ok {
			continue
		}
		if flags != 0 {
			return nil, unknownf("table %s has flags %#x", xt.name, flags)
		}
		t := nftSaveTable{name: xt.name}
		var user []nftSaveChain
		base := map[string]nftSaveChain{}
		for _, c := range chains[xt.name] {
			if c.flags != 0 && !c.base {
				return nil, unknownf("chain %s of table %s has flags %#x", c.name, xt.name, c.flags)
			}
			if !c.base {
				user = append(user, c)
				continue
			}
			base[c.name] = c
		}
		for _, b := range xt.chains {
			c, ok := base[b.name]
			if !ok {
				t.chains = append(t.chains, nftSaveChain{name: b.name, base: true, policy: verdictAccept})
				t.absent = append(t.absent, true)
				continue
			}
			if c.hook != b.hook || c.prio != b.prio || c.typ != b.typ {
				return nil, unknownf("base chain %s of table %s is hook %d, priority %d, type %s", c.name, xt.name, c.hook, c.prio, c.typ)
			}
			t.chains = append(t.chains, c)
			t.absent = append(t.absent, false)
			delete(base, b.name)
		}
		for n := range base {
			return nil, unknownf("base chain %s is not one of table %s's", n, xt.name)
		}
		slices.SortFunc(user, func(a, b nftSaveChain) int {
			switch {
			case a.name < b.name:
				return -1
			case a.name > b.name:
				return 1
			}
			return 0
		})
		t.chains = append(t.chains, user...)
		t.absent = append(t.absent, make([]bool, len(user))...)
		out = append(out, t)
	}
	return out, nil
}

// appendChainHeader prints a chain's ":NAME POLICY [p:b]" line.
func appendChainHeader(b []byte, c nftSaveChain) []byte {
	b = append(b, ':')
	b = append(b, c.name...)
	if !c.base {
		return append(b, " - [0:0]\n"...)
	}
	if c.policy == verdictDrop {
		b = append(b, " DROP ["...)
	} else {
		b = append(b, " ACCEPT ["...)
	}
	b = strconv.AppendUint(b, c.counters.packets, 10)
	b = append(b, ':')
	b = strconv.AppendUint(b, c.counters.bytes, 10)
	return append(b, "]\n"...)
}

// Expression attributes.
const (
	nftaPayloadDreg   = 1
	nftaPayloadBase   = 2
	nftaPayloadOffset = 3
	nftaPayloadLen    = 4

	nftaCmpSreg = 1
	nftaCmpOp   = 2
	nftaCmpData = 3

	nftaBitwiseSreg = 1
	nftaBitwiseDreg = 2
	nftaBitwiseLen  = 3
	nftaBitwiseMask = 4
	nftaBitwiseXor  = 5
	nftaBitwiseOp   = 6

	nftaMetaDreg = 1
	nftaMetaKey  = 2

	nftaImmDreg = 1
	nftaImmData = 2

	nftaRangeSreg = 1
	nftaRangeOp   = 2
	nftaRangeFrom = 3
	nftaRangeTo   = 4

	nftaMatchName = 1
	nftaMatchRev  = 2
	nftaMatchInfo = 3

	nftaTargetName = 1
	nftaTargetRev  = 2
	nftaTargetInfo = 3

	cmpEq  = 0
	cmpNeq = 1
	cmpLte = 3
	cmpGte = 5

	metaIifname = 6
	metaOifname = 7
	metaL4proto = 16

	payloadNetwork   = 1
	payloadTransport = 2
)

// What the register holds: nothing, or what a meta or payload loaded.
const (
	loadNone = iota
	loadIif
	loadOif
	loadL4proto
	loadNetwork
	loadTransport
)

// ruleText gathers one rule's parts as iptables-nft-save prints them.
type ruleText struct {
	v6 bool
	// what the last load put in the register
	loadKind      int // loadNone, loadIif, ...
	loadOff       uint32
	loadLen       uint32
	loadMask      []byte
	pendingRange  int // port range half-done: the gte's offset + 1
	pendingLow    uint16
	src, dst      string
	srcInv        bool
	dstInv        bool
	in, out       string
	inInv, outInv bool
	proto         uint8
	protoSet      bool
	protoInv      bool
	ports         *portMatch
	matches       [][]byte // " -m NAME ..." pieces, in order; ports is one of them (nil slot)
	portsAt       int
	target        []byte
	counters      nftCounters
	counted       bool
	done          bool // a verdict or target ended the rule
}

// portMatch is a tcp or udp match's ports.
type portMatch struct {
	spt, dpt       [2]uint16
	sptSet, dptSet bool
	sptInv, dptInv bool
}

// appendRule prints one NEWRULE message as an iptables-nft-save -c line.
func appendRule(b []byte, attrs []byte, v6 bool) ([]byte, error) {
	var chain string
	var exprs, udata []byte
	if err := nlAttrs(attrs, func(t uint16, v []byte) error {
		switch t {
		case nftaRuleChain:
			chain = cstr(v)
		case nftaRuleExpressions:
			exprs = v
		case nftaRuleUserdata:
			udata = v
		}
		return nil
	}); err != nil {
		return b, err
	}
	r := ruleText{v6: v6, portsAt: -1}
	if err := nlAttrs(exprs, func(t uint16, v []byte) error {
		if t != nftaListElem {
			return unknownf("expression list element %d", t)
		}
		var name string
		var data []byte
		if err := nlAttrs(v, func(t uint16, v []byte) error {
			switch t {
			case nftaExprName:
				name = cstr(v)
			case nftaExprData:
				data = v
			}
			return nil
		}); err != nil {
			return err
		}
		if r.done {
			return unknownf("expression %s after the rule's verdict", name)
		}
		return r.expr(name, data)
	}); err != nil {
		return b, err
	}
	if r.loadKind != loadNone || r.pendingRange != 0 {
		return b, unknownf("a load nothing compares")
	}
	if !r.counted {
		return b, unknownf("a rule without a counter")
	}
	if udata != nil {
		// iptables-nft 1.8.9 keeps comments in a match; a newer one (or
		// nft) may keep them, or more, here.
		return b, unknownf("rule userdata")
	}
	return r.appendTo(b, chain), nil
}

// expr takes one expression of the rule.
func (r *ruleText) expr(name string, data []byte) error {
	var attr exprAttrs
	if err := nlAttrs(data, func(t uint16, v []byte) error {
		if int(t) >= len(attr.v) {
			return unknownf("%s attribute %d", name, t)
		}
		if attr.v[t] == nil {
			attr.n++
		}
		attr.v[t] = v
		return nil
	}); err != nil {
		return err
	}
	switch name {
	case "meta":
		if r.loadKind != loadNone || attr.n != 2 || be32(attr.v[nftaMetaDreg]) != 1 {
			return unknownf("meta with %d attributes", attr.n)
		}
		switch be32(attr.v[nftaMetaKey]) {
		case metaIifname:
			r.loadKind = loadIif
		case metaOifname:
			r.loadKind = loadOif
		case metaL4proto:
			r.loadKind = loadL4proto
		default:
			return unknownf("meta key %d", be32(attr.v[nftaMetaKey]))
		}
	case "payload":
		if r.loadKind != loadNone || attr.n != 4 || be32(attr.v[nftaPayloadDreg]) != 1 {
			return unknownf("payload with %d attributes", attr.n)
		}
		switch be32(attr.v[nftaPayloadBase]) {
		case payloadNetwork:
			r.loadKind = loadNetwork
		case payloadTransport:
			r.loadKind = loadTransport
		default:
			return unknownf("payload base %d", be32(attr.v[nftaPayloadBase]))
		}
		r.loadOff, r.loadLen, r.loadMask = be32(attr.v[nftaPayloadOffset]), be32(attr.v[nftaPayloadLen]), nil
	case "bitwise":
		if r.loadKind != loadNetwork || r.loadMask != nil || be32(attr.v[nftaBitwiseSreg]) != 1 || be32(attr.v[nftaBitwiseDreg]) != 1 ||
			be32(attr.v[nftaBitwiseLen]) != r.loadLen || (attr.v[nftaBitwiseOp] != nil && be32(attr.v[nftaBitwiseOp]) != 0) {
			return unknownf("bitwise")
		}
		mask, err := dataValue(attr.v[nftaBitwiseMask])
		if err != nil {
			return err
		}
		xor, err := dataValue(attr.v[nftaBitwiseXor])
		if err != nil {
			return err
		}
		if len(mask) != int(r.loadLen) || len(xor) != len(mask) || !allZero(xor) {
			return unknownf("bitwise mask %x xor %x", mask, xor)
		}
		r.loadMask = mask
	case "cmp":
		if be32(attr.v[nftaCmpSreg]) != 1 || r.loadKind == loadNone {
			return unknownf("cmp")
		}
		v, err := dataValue(attr.v[nftaCmpData])
		if err != nil {
			return err
		}
		return r.cmp(be32(attr.v[nftaCmpOp]), v)
	case "range":
		if be32(attr.v[nftaRangeSreg]) != 1 || r.loadKind != loadTransport {
			return unknownf("range")
		}
		from, err := dataValue(attr.v[nftaRangeFrom])
		if err != nil {
			return err
		}
		to, err := dataValue(attr.v[nftaRangeTo])
		if err != nil {
			return err
		}
		if len(from) != 2 || len(to) != 2 {
			return unknownf("range of %d bytes", len(from))
		}
		op := be32(attr.v[nftaRangeOp])
		if op > 1 {
			return unknownf("range op %d", op)
		}
		r.loadKind = loadNone
		return r.port(binary.BigEndian.Uint16(from), binary.BigEndian.Uint16(to), op == 1)
	case "counter":
		if r.counted {
			return unknownf("two counters")
		}
		c, err := parseCounters(data)
		if err != nil {
			return err
		}
		r.counters, r.counted = c, true
	case "immediate":
		if be32(attr.v[nftaImmDreg]) != 0 || r.loadKind != loadNone {
			return unknownf("immediate")
		}
		return r.verdict(attr.v[nftaImmData])
	case "match":
		if r.loadKind != loadNone {
			return unknownf("match after a load")
		}
		m, err := xtMatchText(cstr(attr.v[nftaMatchName]), be32(attr.v[nftaMatchRev]), attr.v[nftaMatchInfo])
		if err != nil {
			return err
		}
		r.matches = append(r.matches, m)
	case "target":
		if r.loadKind != loadNone || r.target != nil {
			return unknownf("target after a load")
		}
		t, err := xtTargetText(cstr(attr.v[nftaTargetName]), be32(attr.v[nftaTargetRev]), attr.v[nftaTargetInfo], r.v6)
		if err != nil {
			return err
		}
		r.target, r.done = t, true
	default:
		return unknownf("expression %s", name)
	}
	return nil
}

// exprAttrs are an expression's attributes by type.
type exprAttrs struct {
	v [12][]byte
	n int
}

// dataValue is an NFTA_DATA_VALUE.
func dataValue(v []byte) ([]byte, error) {
	var out []byte
	err := nlAttrs(v, func(t uint16, v []byte) error {
		if t == nftaDataValue {
			out = v
		}
		return nil
	})
	if out == nil && err == nil {
		err = unknownf("data without a value")
	}
	return out, err
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// cmp compares the register with v.
func (r *ruleText) cmp(op uint32, v []byte) error {
	kind := r.loadKind
	r.loadKind = loadNone
	inv := false
	switch op {
	case cmpEq:
	case cmpNeq:
		inv = true
	case cmpGte, cmpLte:
		if kind != loadTransport || len(v) != 2 {
			return unknownf("cmp op %d", op)
		}
	default:
		return unknownf("cmp op %d", op)
	}
	switch kind {
	case loadIif, loadOif:
		name, err := ifaceName(v)
		if err != nil {
			return err
		}
		if kind == loadIif {
			if r.in != "" {
				return unknownf("two -i")
			}
			r.in, r.inInv = name, inv
		} else {
			if r.out != "" {
				return unknownf("two -o")
			}
			r.out, r.outInv = name, inv
		}
	case loadL4proto:
		if len(v) != 1 || r.protoSet {
			return unknownf("l4proto of %d bytes", len(v))
		}
		if _, ok := protoName(v[0]); !ok {
			return unknownf("protocol %d", v[0])
		}
		r.proto, r.protoSet, r.protoInv = v[0], true, inv
	case loadNetwork:
		return r.addr(v, inv)
	case loadTransport:
		if len(v) != 2 || r.loadLen != 2 {
			return unknownf("port of %d bytes", len(v))
		}
		p := binary.BigEndian.Uint16(v)
		switch op {
		case cmpGte:
			if r.pendingRange != 0 {
				return unknownf("two port range starts")
			}
			r.pendingRange, r.pendingLow = int(r.loadOff)+1, p
			return nil
		case cmpLte:
			if r.pendingRange != int(r.loadOff)+1 {
				return unknownf("a port range end without its start")
			}
			r.pendingRange = 0
			return r.port(r.pendingLow, p, false)
		}
		return r.port(p, p, inv)
	}
	return nil
}

// ifaceName is an interface name compared as iptables-nft compares it:
// the name and its NUL, or a prefix without NUL for "name+".
func ifaceName(v []byte) (string, error) {
	if len(v) == 0 || len(v) > 16 {
		return "", unknownf("interface name of %d bytes", len(v))
	}
	if i := bytes.IndexByte(v, 0); i >= 0 {
		if i == 0 || !allZero(v[i:]) {
			return "", unknownf("interface name %q", v)
		}
		return string(v[:i]), nil
	}
	return string(v) + "+", nil
}

// addr takes a compared address: the loaded bytes (and mask) of the
// source or destination.
func (r *ruleText) addr(v []byte, inv bool) error {
	size, srcOff, dstOff := uint32(4), uint32(12), uint32(16)
	if r.v6 {
		size, srcOff, dstOff = 16, 8, 24
	}
	var isSrc bool
	switch r.loadOff {
	case srcOff:
		isSrc = true
	case dstOff:
	default:
		return unknownf("network header offset %d", r.loadOff)
	}
	if r.loadLen == 0 || r.loadLen > size || len(v) != int(r.loadLen) {
		return unknownf("address of %d bytes", len(v))
	}
	var a [16]byte
	copy(a[:], v)
	bits := int(r.loadLen) * 8
	if r.loadMask != nil {
		bits = -1
		ones := 0
		for i, m := range r.loadMask {
			switch {
			case m == 0xff && ones == i*8:
				ones += 8
			case m != 0 && ones == i*8 && m == ^byte(0)<<(8-onesOf(m)):
				ones += onesOf(m)
			case m == 0:
			default:
				return unknownf("mask %x", r.loadMask)
			}
		}
		// every byte after the prefix must be zero
		for i := (ones + 7) / 8; i < len(r.loadMask); i++ {
			if r.loadMask[i] != 0 {
				return unknownf("mask %x", r.loadMask)
			}
		}
		bits = ones
	}
	var s string
	if r.v6 {
		var ok bool
		if s, ok = v6Text(a); !ok {
			return unknownf("IPv6 address %x", a)
		}
	} else {
		s = netip.AddrFrom4([4]byte(a[:4])).String()
	}
	s += "/" + strconv.Itoa(bits)
	if isSrc {
		if r.src != "" {
			return unknownf("two -s")
		}
		r.src, r.srcInv = s, inv
	} else {
		if r.dst != "" {
			return unknownf("two -d")
		}
		r.dst, r.dstInv = s, inv
	}
	return nil
}

// v6Text is an IPv6 address as iptables prints it (inet_ntop), when
// netip prints it alike: it does but for an address whose first 96 bits
// are zero and whose last 32 are not 0.0.0.1 or zero (the deprecated
// IPv4-compatible form, which inet_ntop prints as ::a.b.c.d).
func v6Text(a [16]byte) (string, bool) {
	if allZero(a[:12]) && !allZero(a[12:14]) {
		return "", false
	}
	return netip.AddrFrom16(a).String(), true
}

func onesOf(m byte) int {
	n := 0
	for m&0x80 != 0 {
		n++
		m <<= 1
	}
	return n
}

// port takes a source or destination port (range) of the tcp or udp match.
func (r *ruleText) port(lo, hi uint16, inv bool) error {
	if !r.protoSet || r.protoInv || (r.proto != 6 && r.proto != 17) {
		return unknownf("ports without -p tcp or udp")
	}
	if r.ports == nil {
		r.ports = &portMatch{}
		r.portsAt = len(r.matches)
		r.matches = append(r.matches, nil)
	}
	p := r.ports
	switch r.loadOff {
	case 0:
		if p.sptSet {
			return unknownf("two --sport")
		}
		p.spt, p.sptSet, p.sptInv = [2]uint16{lo, hi}, true, inv
	case 2:
		if p.dptSet {
			return unknownf("two --dport")
		}
		p.dpt, p.dptSet, p.dptInv = [2]uint16{lo, hi}, true, inv
	default:
		return unknownf("transport header offset %d", r.loadOff)
	}
	return nil
}

// verdict takes an immediate verdict: the rule's -j or -g.
func (r *ruleText) verdict(data []byte) error {
	var code int32
	var chain string
	var have bool
	if err := nlAttrs(data, func(t uint16, v []byte) error {
		if t != nftaDataVerdict {
			return unknownf("immediate data %d", t)
		}
		have = true
		return nlAttrs(v, func(t uint16, v []byte) error {
			switch t {
			case nftaVerdictCode:
				code = int32(be32(v))
			case nftaVerdictChain:
				chain = cstr(v)
			}
			return nil
		})
	}); err != nil {
		return err
	}
	if !have {
		return unknownf("immediate without a verdict")
	}
	switch code {
	case verdictAccept:
		r.target = []byte(" -j ACCEPT")
	case verdictDrop:
		r.target = []byte(" -j DROP")
	case verdictReturn:
		r.target = []byte(" -j RETURN")
	case verdictJump:
		r.target = []byte(" -j " + chain)
	case verdictGoto:
		r.target = []byte(" -g " + chain)
	default:
		return unknownf("verdict %d", code)
	}
	if (code == verdictJump || code == verdictGoto) && chain == "" {
		return unknownf("jump without a chain")
	}
	r.done = true
	return nil
}

// protoName is iptables' name of a protocol it prints by name.
func protoName(p uint8) (string, bool) {
	switch p {
	case 6:
		return "tcp", true
	case 17:
		return "udp", true
	case 1:
		return "icmp", true
	}
	return "", false
}

// appendTo prints the rule.
func (r *ruleText) appendTo(b []byte, chain string) []byte {
	b = append(b, '[')
	b = strconv.AppendUint(b, r.counters.packets, 10)
	b = append(b, ':')
	b = strconv.AppendUint(b, r.counters.bytes, 10)
	b = append(b, "] -A "...)
	b = append(b, chain...)
	opt := func(inv bool, flag, v string) {
		if v == "" {
			return
		}
		if inv {
			b = append(b, " !"...)
		}
		b = append(b, flag...)
		b = append(b, v...)
	}
	opt(r.srcInv, " -s ", r.src)
	opt(r.dstInv, " -d ", r.dst)
	opt(r.inInv, " -i ", r.in)
	opt(r.outInv, " -o ", r.out)
	if r.protoSet {
		name, _ := protoName(r.proto)
		opt(r.protoInv, " -p ", name)
	}
	for i, m := range r.matches {
		if i == r.portsAt {
			b = r.ports.appendTo(b, r.proto)
			continue
		}
		b = append(b, m...)
	}
	b = append(b, r.target...)
	return append(b, '\n')
}

func (p *portMatch) appendTo(b []byte, proto uint8) []byte {
	if proto == 6 {
		b = append(b, " -m tcp"...)
	} else {
		b = append(b, " -m udp"...)
	}
	one := func(set, inv bool, pt [2]uint16, flag string) {
		if !set || (pt[0] == 0 && pt[1] == 0xffff) {
			return
		}
		if inv {
			b = append(b, " !"...)
		}
		b = append(b, flag...)
		b = strconv.AppendUint(b, uint64(pt[0]), 10)
		if pt[1] != pt[0] {
			b = append(b, ':')
			b = strconv.AppendUint(b, uint64(pt[1]), 10)
		}
	}
	one(p.sptSet, p.sptInv, p.spt, " --sport ")
	one(p.dptSet, p.dptInv, p.dpt, " --dport ")
	return b
}

// appendSaveString prints a match's string argument as iptables-save
// does (xtables_save_string): bare when it is only letters, digits, "_"
// and "-", else in double quotes with ", \ and ' escaped.
func appendSaveString(b []byte, s string) []byte {
	plain := s != ""
	for i := 0; i < len(s) && plain; i++ {
		c := s[i]
		plain = c == '_' || c == '-' || '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
	}
	if plain {
		b = append(b, ' ')
		return append(b, s...)
	}
	b = append(b, " \""...)
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == '"' || c == '\\' || c == '\'' {
			b = append(b, '\\')
		}
		b = append(b, s[i])
	}
	return append(b, '"')
}

// xtMatchText prints a compat match (an xtables extension the kernel runs
// as such) that nftSave knows.
func xtMatchText(name string, rev uint32, info []byte) ([]byte, error) {
	switch {
	case name == "conntrack" && rev == 3:
		// struct xt_conntrack_mtinfo3: 8 addresses of 16 bytes, two u32
		// expiry bounds, l4proto and 4 ports (u16), then match_flags,
		// invert_flags, state_mask, status_mask at 146..153.
		if len(info) < 162 {
			return nil, unknownf("conntrack info of %d bytes", len(info))
		}
		flags := binary.NativeEndian.Uint16(info[146:])
		inv := binary.NativeEndian.Uint16(info[148:])
		state := binary.NativeEndian.Uint16(info[150:])
		if flags != 1 || inv&^1 != 0 || state == 0 || state&^0xf != 0 {
			return nil, unknownf("conntrack flags %#x", flags)
		}
		b := []byte(" -m conntrack")
		if inv&1 != 0 {
			b = append(b, " !"...)
		}
		b = append(b, " --ctstate"...)
		sep := byte(' ')
		for _, s := range []struct {
			bit  uint16
			name string
		}{{1, "INVALID"}, {8, "NEW"}, {4, "RELATED"}, {2, "ESTABLISHED"}} {
			if state&s.bit != 0 {
				b = append(b, sep)
				b = append(b, s.name...)
				sep = ','
			}
		}
		return b, nil
	case name == "comment" && rev == 0:
		// struct xt_comment_info { char comment[256]; }
		if len(info) < 256 || bytes.IndexByte(info[:256], 0) < 0 {
			return nil, unknownf("comment info of %d bytes", len(info))
		}
		return appendSaveString([]byte(" -m comment --comment"), cstr(info[:256])), nil
	case name == "addrtype" && rev == 1:
		// struct xt_addrtype_info_v1 { u16 source, dest; u32 flags; }
		if len(info) < 8 {
			return nil, unknownf("addrtype info of %d bytes", len(info))
		}
		src := binary.NativeEndian.Uint16(info)
		dst := binary.NativeEndian.Uint16(info[2:])
		flags := binary.NativeEndian.Uint32(info[4:])
		if flags&^0xf != 0 {
			return nil, unknownf("addrtype flags %#x", flags)
		}
		b := []byte(" -m addrtype")
		types := func(inv bool, flag string, m uint16) {
			if m == 0 {
				return
			}
			if inv {
				b = append(b, " !"...)
			}
			b = append(b, flag...)
			sep := byte(' ')
			for i, n := range rtnNames {
				if m&(1<<i) != 0 {
					b = append(b, sep)
					b = append(b, n...)
					sep = ','
				}
			}
		}
		if (src|dst)>>len(rtnNames) != 0 {
			return nil, unknownf("addrtype types %#x %#x", src, dst)
		}
		types(flags&1 != 0, " --src-type", src)
		types(flags&2 != 0, " --dst-type", dst)
		if flags&4 != 0 {
			b = append(b, " --limit-iface-in"...)
		}
		if flags&8 != 0 {
			b = append(b, " --limit-iface-out"...)
		}
		return b, nil
	}
	return nil, unknownf("match %s revision %d", name, rev)
}

// rtnNames are the route types of addrtype, by bit.
var rtnNames = []string{"UNSPEC", "UNICAST", "LOCAL", "BROADCAST", "ANYCAST", "MULTICAST", "BLACKHOLE", "UNREACHABLE", "PROHIBIT", "THROW", "NAT", "XRESOLVE"}

// NAT range flags (linux/netfilter/nf_nat.h).
const (
	natMapIPs         = 1
	natProtoSpecified = 2
)

// xtTargetText prints a compat target that nftSave knows.
func xtTargetText(name string, rev uint32, info []byte, v6 bool) ([]byte, error) {
	switch {
	case name == "DNAT" && rev == 2:
		// struct nf_nat_range2 { u32 flags; nf_inet_addr min, max (16
		// each); be16 min_proto, max_proto, base_proto; }
		if len(info) < 42 {
			return nil, unknownf("DNAT info of %d bytes", len(info))
		}
		flags := binary.NativeEndian.Uint32(info)
		if flags&^(natMapIPs|natProtoSpecified) != 0 || flags&natMapIPs == 0 {
			return nil, unknownf("DNAT flags %#x", flags)
		}
		minA, maxA := info[4:20], info[20:36]
		if !bytes.Equal(minA, maxA) {
			return nil, unknownf("DNAT to an address range")
		}
		var a string
		if v6 {
			var ok bool
			if a, ok = v6Text([16]byte(minA)); !ok {
				return nil, unknownf("DNAT to IPv6 address %x", minA)
			}
		} else {
			if !allZero(minA[4:]) {
				return nil, unknownf("DNAT address")
			}
			a = netip.AddrFrom4([4]byte(minA[:4])).String()
		}
		b := []byte(" -j DNAT --to-destination ")
		ports := flags&natProtoSpecified != 0
		if v6 && ports {
			b = append(b, '[')
		}
		b = append(b, a...)
		if v6 && ports {
			b = append(b, ']')
		}
		if ports {
			lo, hi := binary.BigEndian.Uint16(info[36:]), binary.BigEndian.Uint16(info[38:])
			b = append(b, ':')
			b = strconv.AppendUint(b, uint64(lo), 10)
			if hi != lo {
				b = append(b, '-')
				b = strconv.AppendUint(b, uint64(hi), 10)
			}
		}
		return b, nil
	case name == "MASQUERADE" && rev == 0:
		// IPv4: struct nf_nat_ipv4_multi_range_compat { u32 rangesize;
		// { u32 flags; ... } }; IPv6: struct nf_nat_range { u32 flags; ... }
		off := 4
		if v6 {
			off = 0
		}
		if len(info) < off+4 {
			return nil, unknownf("MASQUERADE info of %d bytes", len(info))
		}
		if flags := binary.NativeEndian.Uint32(info[off:]); flags != 0 {
			return nil, unknownf("MASQUERADE flags %#x", flags)
		}
		return []byte(" -j MASQUERADE"), nil
	}
	return nil, unknownf("target %s revision %d", name, rev)
}
