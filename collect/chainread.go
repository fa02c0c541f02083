package collect

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/iptscope/iptscope/parse"
	"github.com/iptscope/iptscope/snapshot"
	"github.com/iptscope/iptscope/watch"
)

// Re-reading single chains of iptables-nft.
//
// Why: on a host of 100,000 rules a full read costs about 1.5 s of CPU
// for iptables-nft-save and 25 s for the two `nft list ruleset` (which
// walk iptables-nft's tables too), while `iptables-nft -t nat -S DOCKER`
// asks the kernel for that one chain: since iptables 1.8.5 (the cache
// rework, "nft: cache: Fetch only chains in nft_chain_list_get" and what
// followed) the listing of one chain dumps only its rules. `iptables-nft-save
// -t TABLE` is no help: 1.8.9 still fetches every table (1.3 s there).
// Measured on 1.8.9 in a throw-away namespace of internal/synth's 100,000
// rules: -S of a chain of 3 rules takes 2 ms, of the 33,000-rule nat
// DOCKER 0.45 s.
//
// The listing is then spliced into the text of the last iptables-nft-save
// dump, and that text parsed again: the result is by construction what a
// full read would give (the e2e test TestWatchChainReadEqualsAFullRead
// checks it after random edits on real iptables-nft), at the price of one
// parse of the whole dump (about 90 ms for 100,000 rules).

// ErrNoChainRead marks why a chain re-read cannot stand in for a full
// read (a backend, version, dump or listing it does not handle): the
// caller reads the host in full.
var ErrNoChainRead = errors.New("no single-chain read")

// MinChainReadVersion is the first iptables whose nft variant lists one
// chain without fetching the others.
const MinChainReadVersion = "1.8.5"

var iptablesVersionRE = regexp.MustCompile(`^ip6?tables(?:-nft)? v(\d+)\.(\d+)\.(\d+)\S* \(nf_tables\)`)

// ChainReadVersion says whether the output of `iptables-nft --version`
// names an nf_tables iptables of at least MinChainReadVersion. It is pure.
func ChainReadVersion(versionOutput string) error {
	v := strings.TrimSpace(versionOutput)
	m := iptablesVersionRE.FindStringSubmatch(v)
	if m == nil {
		return fmt.Errorf("%w: `iptables-nft --version` says %q, not an nf_tables iptables", ErrNoChainRead, v)
	}
	var n [3]int
	for i := range n {
		n[i], _ = strconv.Atoi(m[i+1])
	}
	if slices.Compare(n[:], []int{1, 8, 5}) < 0 {
		return fmt.Errorf("%w: iptables v%d.%d.%d fetches the whole ruleset to list one chain (%s or later does not)", ErrNoChainRead, n[0], n[1], n[2], MinChainReadVersion)
	}
	return nil
}

// CheckChainReads runs `iptables-nft --version` (through Options.Runner)
// and says, with ChainReadVersion, whether single chains can be re-read.
func CheckChainReads(ctx context.Context, o Options) error {
	r := o.Runner
	if r == nil {
		r = ExecRunner{Env: o.Env}
	}
	out, err := r.Run(ctx, "iptables-nft", []string{"--version"}, nil)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrNoChainRead, err)
	}
	return ChainReadVersion(string(out))
}

// ChainListing is what `iptables-nft -t TABLE -S CHAIN -v` (ip6tables-nft
// for IPv6) printed for one chain.
type ChainListing struct {
	Chain watch.ChainRef
	Text  string
}

// ListCommand is the tool that lists a chain of a family: iptables-nft
// or ip6tables-nft.
func ListCommand(f Family) string {
	if f == IPv6 {
		return "ip6tables-nft"
	}
	return "iptables-nft"
}

// ReadChains lists each chain with `iptables-nft -t TABLE -S CHAIN -v`
// (ip6tables-nft for IPv6), inside the namespace named as Options.NetNS
// names it, one after the other. The first failure ends it (a chain that
// no longer exists, the tool missing): the caller then reads in full.
func ReadChains(ctx context.Context, o Options, chains []watch.ChainRef) ([]ChainListing, error) {
	r := o.Runner
	if r == nil {
		r = ExecRunner{Env: o.Env}
	}
	out := make([]ChainListing, 0, len(chains))
	var runErr error
	read := func() error {
		for _, c := range chains {
			b, err := r.Run(ctx, ListCommand(Family(c.Family)), []string{"-t", c.Table, "-S", c.Chain, "-v"}, nil)
			if err != nil {
				runErr = fmt.Errorf("listing %s: %w", c, err)
				return nil
			}
			out = append(out, ChainListing{Chain: c, Text: string(b)})
		}
		return nil
	}
	err := InNetNS(o.NetNS, read)
	if err == nil {
		err = runErr
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNoChainRead, needsRoot(err))
	}
	return out, nil
}

// SpliceChains returns a copy of prev in which the iptables-nft dump of
// each listed chain's family has that chain's rules (and, for a built-in
// chain, its policy and counters) as listed, parsed again from the
// spliced text; CollectedAt is now. Everything else (the other chains,
// their counters, the native nftables ruleset, links, Docker's view) is
// prev's: the caller knows that nothing else changed. prev is not
// modified. It is pure.
//
// It fails with ErrNoChainRead when the splice cannot be sure to give
// what a full read would: `iptables` is not the nft backend or Docker's
// chains are in legacy iptables, the family has no parsed iptables-nft
// dump, a chain or table is not in it, the dump is not laid out as
// iptables-nft-save lays it out (headers, then each chain's rules in the
// headers' order), or a listing is not what `-S CHAIN -v` prints.
func SpliceChains(prev *snapshot.Snapshot, listings []ChainListing, now time.Time) (*snapshot.Snapshot, error) {
	if prev == nil {
		return nil, fmt.Errorf("%w: no earlier snapshot", ErrNoChainRead)
	}
	if prev.IptablesBackend != snapshot.BackendNFT {
		return nil, fmt.Errorf("%w: iptables uses the %q backend, not nft", ErrNoChainRead, prev.IptablesBackend)
	}
	if b := prev.DockerBackend; b == snapshot.BackendLegacy || b == snapshot.BackendBoth {
		return nil, fmt.Errorf("%w: Docker's chains are in legacy iptables", ErrNoChainRead)
	}
	// family -> table -> chain -> the listing, as save lines.
	byFamily := map[string]map[string]map[string]*savedChain{}
	for _, l := range listings {
		sc, err := savedChainOf(l)
		if err != nil {
			return nil, err
		}
		c := l.Chain
		if byFamily[c.Family] == nil {
			byFamily[c.Family] = map[string]map[string]*savedChain{}
		}
		if byFamily[c.Family][c.Table] == nil {
			byFamily[c.Family][c.Table] = map[string]*savedChain{}
		}
		byFamily[c.Family][c.Table][c.Chain] = sc
	}
	next := *prev
	next.Rules = slices.Clone(prev.Rules)
	next.CollectedAt = now
	for family, tables := range byFamily {
		i := slices.IndexFunc(next.Rules, func(d snapshot.RuleDump) bool {
			return d.Backend == snapshot.BackendNFT && d.Family == family
		})
		if i < 0 {
			return nil, fmt.Errorf("%w: no iptables-nft %s dump", ErrNoChainRead, family)
		}
		d := next.Rules[i]
		if d.Error != "" || d.Ruleset == nil || d.Ruleset.Format != parse.FormatSave {
			return nil, fmt.Errorf("%w: the iptables-nft %s dump is not a parsed save dump", ErrNoChainRead, family)
		}
		raw, err := spliceDump(d.Raw, tables)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrNoChainRead, family, err)
		}
		// The rules are substrings of raw, which the dump keeps anyway.
		rs, err := parse.ParseString(raw)
		if err != nil {
			return nil, fmt.Errorf("%w: parsing the spliced %s dump: %w", ErrNoChainRead, family, err)
		}
		next.Rules[i] = snapshot.RuleDump{Backend: d.Backend, Family: d.Family, Raw: raw, Ruleset: rs}
	}
	return &next, nil
}

// savedChain is a chain listing in the words of iptables-save -c: the
// header (":FORWARD DROP [0:0]"; "" for a user chain, whose header says
// nothing the listing can change) and the rule lines ("[0:0] -A ...\n").
type savedChain struct {
	builtin bool
	header  string
	rules   []string
}

// savedChainOf turns a `-S CHAIN -v` listing into save lines:
//
//	-P FORWARD DROP -c 5 300                  ->  :FORWARD DROP [5:300]
//	-N DOCKER                                 ->  (header kept)
//	-A DOCKER ! -i docker0 -p tcp -m tcp --dport 8080 -c 0 0 -j DNAT --to-destination 172.17.0.2:80
//	  ->  [0:0] -A DOCKER ! -i docker0 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 172.17.0.2:80
//
// Why this is exact: iptables-nft prints both with nft_rule_print_save;
// with -v the counters come as " -c PKTS BYTES" after the matches and
// before the target (save_matches_and_target in iptables 1.8), with -c
// of -save as "[PKTS:BYTES] " before "-A".
func savedChainOf(l ChainListing) (*savedChain, error) {
	chain := l.Chain.Chain
	bad := func(line, why string) error {
		return fmt.Errorf("%w: listing of %s: %s: %q", ErrNoChainRead, l.Chain, why, line)
	}
	sc := &savedChain{}
	lines := strings.Split(strings.TrimSuffix(l.Text, "\n"), "\n")
	if len(lines) == 0 || lines[0] == "" {
		return nil, bad("", "empty")
	}
	switch head := lines[0]; {
	case head == "-N "+chain:
	case strings.HasPrefix(head, "-P "+chain+" "):
		f := strings.Fields(head)
		if len(f) != 6 || f[3] != "-c" || !isDigits(f[4]) || !isDigits(f[5]) {
			return nil, bad(head, "not a policy with counters")
		}
		sc.builtin = true
		sc.header = ":" + chain + " " + f[2] + " [" + f[4] + ":" + f[5] + "]\n"
	default:
		return nil, bad(head, "does not start with the chain's -N or -P")
	}
	for _, line := range lines[1:] {
		if !strings.HasPrefix(line, "-A "+chain+" ") && line != "-A "+chain {
			return nil, bad(line, "not a rule of the chain")
		}
		rest, counters, ok := cutCounters(line)
		if !ok {
			return nil, bad(line, "no -c PKTS BYTES before the target")
		}
		sc.rules = append(sc.rules, "["+counters+"] "+rest+"\n")
	}
	return sc, nil
}

// cutCounters takes " -c PKTS BYTES" out of a rule of `-S -v`: the first
// one outside double quotes that ends the line or is followed by the
// target (" -j " or " -g "). counters is "PKTS:BYTES".
func cutCounters(line string) (rest, counters string, ok bool) {
	inQuote := false
	for i := 0; i < len(line); i++ {
		switch c := line[i]; {
		case c == '\\' && inQuote:
			i++ // an escaped character in a quoted string
		case c == '"':
			inQuote = !inQuote
		case c == ' ' && !inQuote && strings.HasPrefix(line[i:], " -c "):
			f := strings.SplitN(line[i+4:], " ", 3)
			if len(f) < 2 || !isDigits(f[0]) || !isDigits(f[1]) {
				continue
			}
			end := i + 4 + len(f[0]) + 1 + len(f[1])
			if after := line[end:]; after != "" && !strings.HasPrefix(after, " -j ") && !strings.HasPrefix(after, " -g ") {
				continue
			}
			return line[:i] + line[end:], f[0] + ":" + f[1], true
		}
	}
	return "", "", false
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// spliceDump replaces, in an iptables-nft-save -c text, the rules of the
// given chains per table (and the headers of built-in ones). Tables
// without a listed chain are copied as they are; a table with one must
// be laid out as iptables-nft-save prints it: "*TABLE", the chain
// headers, each chain's rules in the headers' order, "COMMIT".
func spliceDump(raw string, tables map[string]map[string]*savedChain) (string, error) {
	var b strings.Builder
	b.Grow(len(raw) + 4096)
	lines := strings.SplitAfter(raw, "\n")
	done := map[string]bool{}
	for i := 0; i < len(lines); i++ {
		line := lines[i]
		name, isTable := strings.CutPrefix(strings.TrimSuffix(line, "\n"), "*")
		chains := tables[name]
		if !isTable || chains == nil {
			b.WriteString(line)
			continue
		}
		if done[name] {
			return "", fmt.Errorf("table %s appears twice", name)
		}
		done[name] = true
		end, err := spliceTable(&b, lines, i, chains)
		if err != nil {
			return "", fmt.Errorf("table %s: %w", name, err)
		}
		i = end
	}
	for name := range tables {
		if !done[name] {
			return "", fmt.Errorf("no table %s in the dump", name)
		}
	}
	return b.String(), nil
}

// spliceTable writes the table whose "*TABLE" line is lines[start] with
// the listed chains replaced, and returns the index of its COMMIT line.
func spliceTable(b *strings.Builder, lines []string, start int, chains map[string]*savedChain) (int, error) {
	type declared struct {
		name, header string
		builtin      bool
		rules        []string
	}
	var order []*declared
	byName := map[string]*declared{}
	last := -1 // index in order of the chain of the last rule line
	i := start + 1
	committed := false
lines:
	for ; i < len(lines); i++ {
		line := lines[i]
		switch {
		case strings.TrimSuffix(line, "\n") == "COMMIT":
			committed = true
			break lines
		case strings.HasPrefix(line, ":"):
			if last >= 0 {
				return 0, fmt.Errorf("chain header after rules: %q", strings.TrimSpace(line))
			}
			f := strings.Fields(line[1:])
			if len(f) != 3 {
				return 0, fmt.Errorf("unexpected chain header %q", strings.TrimSpace(line))
			}
			d := &declared{name: f[0], header: line, builtin: f[1] != "-"}
			if byName[d.name] != nil {
				return 0, fmt.Errorf("chain %s declared twice", d.name)
			}
			byName[d.name] = d
			order = append(order, d)
		case strings.HasPrefix(line, "["):
			_, after, ok := strings.Cut(line, "] -A ")
			if !ok {
				return 0, fmt.Errorf("unexpected rule line %q", strings.TrimSpace(line))
			}
			name, _, _ := strings.Cut(strings.TrimSuffix(after, "\n"), " ")
			d := byName[name]
			if d == nil {
				return 0, fmt.Errorf("rule of undeclared chain %s", name)
			}
			at := slices.Index(order, d)
			if at < last {
				return 0, fmt.Errorf("rules of chain %s after those of %s", name, order[last].name)
			}
			last = at
			d.rules = append(d.rules, line)
		default:
			return 0, fmt.Errorf("unexpected line %q", strings.TrimSpace(line))
		}
	}
	if !committed {
		return 0, fmt.Errorf("no COMMIT")
	}
	for name, sc := range chains {
		d := byName[name]
		if d == nil {
			return 0, fmt.Errorf("no chain %s", name)
		}
		if d.builtin != sc.builtin {
			return 0, fmt.Errorf("chain %s is built-in in one of the dump and the listing only", name)
		}
		if sc.builtin {
			d.header = sc.header
		}
		d.rules = sc.rules
	}
	b.WriteString(lines[start])
	for _, d := range order {
		b.WriteString(d.header)
	}
	for _, d := range order {
		for _, r := range d.rules {
			b.WriteString(r)
		}
	}
	b.WriteString(lines[i])
	return i, nil
}
