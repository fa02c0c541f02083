package parse

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// listPair is one host dumped twice: as iptables -L text and as iptables-save.
type listPair struct {
	name, list, save string
	// noIface is set for -L without -v, which does not print interfaces.
	noIface bool
}

// listPairs finds the real samples in testdata/list (made by gen.sh) and
// the real daemon captures under fixtures/*/.
func listPairs(t *testing.T) []listPair {
	t.Helper()
	var pairs []listPair
	lists, err := filepath.Glob("testdata/list/*.L-*.txt")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range lists {
		base := filepath.Base(l)
		host := base[:strings.IndexByte(base, '.')]
		pairs = append(pairs, listPair{
			name: base, list: l, save: filepath.Join("testdata/list", host+".save.txt"),
			noIface: strings.HasSuffix(base, ".L-n.txt"),
		})
	}
	dirs, _ := filepath.Glob("../fixtures/*")
	for _, d := range dirs {
		save := filepath.Join(d, "iptables-save.txt")
		if _, err := os.Stat(save); err != nil {
			continue
		}
		ls, _ := filepath.Glob(filepath.Join(d, "*.list*.txt"))
		for _, l := range ls {
			pairs = append(pairs, listPair{name: filepath.Base(d) + "/" + filepath.Base(l), list: l, save: save})
		}
	}
	if len(pairs) < 12 {
		t.Fatalf("found %d -L samples, want at least 12 (run testdata/list/gen.sh)", len(pairs))
	}
	return pairs
}

// ruleFacts are the typed facts that must not depend on the input format.
type ruleFacts struct {
	Target            Target
	Goto              bool
	Proto             string
	Source, Dest      string
	SrcNeg, DstNeg    bool
	In, Out           Negatable
	DestPorts         string
	DestPortsNeg      bool
	NATTo             string
	CTState           Negatable
	AddrSrc, AddrDst  Negatable
	Comment           string
	Spec              string
	TargetOptionCount int
}

func factsOf(r *Rule, noIface bool) ruleFacts {
	ports, pneg := r.DestPorts()
	src, dst := r.AddrType()
	f := ruleFacts{
		Target: r.Target, Goto: r.Goto, Proto: r.Proto(),
		Source: CanonicalAddr(r.Source.Value), SrcNeg: r.Source.Negated,
		Dest: CanonicalAddr(r.Destination.Value), DstNeg: r.Destination.Negated,
		In: r.InIface, Out: r.OutIface,
		DestPorts: fmt.Sprint(ports), DestPortsNeg: pneg,
		NATTo: r.NATTo(), CTState: r.CTState(), AddrSrc: src, AddrDst: dst,
		Comment: r.Comment(), Spec: r.Spec(), TargetOptionCount: len(r.TargetOptions),
	}
	if noIface {
		f.In, f.Out = Negatable{}, Negatable{}
		f.Spec = ""
	}
	return f
}

func TestParseListAgreesWithParseSaveOnRealDumps(t *testing.T) {
	for _, p := range listPairs(t) {
		t.Run("the -L form of "+p.name+" gives the rules of its iptables-save form", func(t *testing.T) {
			ldata, err := os.ReadFile(p.list)
			if err != nil {
				t.Fatal(err)
			}
			sdata, err := os.ReadFile(p.save)
			if err != nil {
				t.Fatal(err)
			}
			srs, serr := ParseSave(sdata)
			lrs, err := ParseList(ldata)
			if errors.Is(serr, ErrEmpty) {
				// The backend holds no rules (the backend-split fixtures
				// capture the host's other, empty backend): the -L form
				// must list no rule either.
				if err == nil {
					for _, lt := range lrs.Tables {
						if lt.RuleCount() > 0 {
							t.Errorf("save form is empty but -L lists %d rules in %s", lt.RuleCount(), lt.Name)
						}
					}
				} else if !errors.Is(err, ErrEmpty) {
					t.Fatalf("ParseList: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseList: %v", err)
			}
			if serr != nil {
				t.Fatalf("ParseSave: %v", serr)
			}
			if lrs.Format != FormatList {
				t.Errorf("Format = %q, want %q", lrs.Format, FormatList)
			}
			lines := strings.Split(string(ldata), "\n")
			for _, lt := range lrs.Tables {
				st := srs.Table(lt.Name)
				if st == nil {
					// iptables-legacy -L creates an empty table (the kernel
					// loads iptable_raw on first use) that an earlier
					// iptables-save did not show: found in the docker-*
					// fixtures. Accept it when it holds no rule.
					if lt.RuleCount() > 0 {
						t.Errorf("table %s is not in the save form", lt.Name)
					}
					continue
				}
				var lnames, snames []ChainName
				for _, c := range lt.Chains {
					lnames = append(lnames, c.Name)
				}
				for _, c := range st.Chains {
					snames = append(snames, c.Name)
				}
				if d := cmp.Diff(sortedChains(snames), sortedChains(lnames)); d != "" {
					t.Errorf("table %s chains (-save +list):\n%s", lt.Name, d)
				}
				for _, lc := range lt.Chains {
					sc := st.Chain(lc.Name)
					if sc == nil {
						continue
					}
					if lc.Builtin != sc.Builtin || lc.Policy != sc.Policy {
						t.Errorf("%s %s: builtin %v policy %q, save says %v %q", lt.Name, lc.Name, lc.Builtin, lc.Policy, sc.Builtin, sc.Policy)
					}
					if len(lc.Rules) != len(sc.Rules) {
						t.Errorf("%s %s: %d rules, save has %d", lt.Name, lc.Name, len(lc.Rules), len(sc.Rules))
						continue
					}
					for i, lr := range lc.Rules {
						sr := sc.Rules[i]
						if d := cmp.Diff(factsOf(sr, p.noIface), factsOf(lr, p.noIface)); d != "" {
							t.Errorf("line %d (%s %s #%d) differs from %q (-save +list):\n%s", lr.Line, lt.Name, lc.Name, i+1, sr.Raw, d)
						}
						if len(lr.Unparsed) > 0 {
							t.Errorf("line %d: unparsed %q", lr.Line, lr.Unparsed)
						}
						if lr.Position != i+1 || lr.Table != lt.Name || lr.Chain != lc.Name {
							t.Errorf("line %d: position %d table %s chain %s", lr.Line, lr.Position, lr.Table, lr.Chain)
						}
						if got := strings.TrimSuffix(lines[lr.Line-1], "\r"); got != lr.Raw {
							t.Errorf("line %d: Raw %q, input %q", lr.Line, lr.Raw, got)
						}
					}
				}
			}
			for _, st := range srs.Tables {
				if st.RuleCount() > 0 && lrs.Table(st.Name) == nil && !strings.Contains(p.list, "fixtures") {
					t.Errorf("table %s of the save form is missing", st.Name)
				}
			}
		})
	}
}

func sortedChains(c []ChainName) []ChainName {
	out := append([]ChainName(nil), c...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

const natList = `Chain PREROUTING (policy ACCEPT 0 packets, 0 bytes)
 pkts bytes target     prot opt in     out     source               destination         
 123K   99M DOCKER     0    --  *      *       0.0.0.0/0            0.0.0.0/0            ADDRTYPE match dst-type LOCAL

Chain INPUT (policy ACCEPT 0 packets, 0 bytes)
 pkts bytes target     prot opt in     out     source               destination         

Chain OUTPUT (policy ACCEPT 0 packets, 0 bytes)
 pkts bytes target     prot opt in     out     source               destination         

Chain POSTROUTING (policy ACCEPT 0 packets, 0 bytes)
 pkts bytes target     prot opt in     out     source               destination         
    0     0 MASQUERADE  all  --  *      !docker0  172.17.0.0/16        0.0.0.0/0           

Chain DOCKER (2 references)
 pkts bytes target     prot opt in     out     source               destination         
    0     0 DNAT       tcp  --  !docker0 *       0.0.0.0/0            0.0.0.0/0            tcp dpt:8080 to:172.17.0.2:80
`

const filterList = `Chain INPUT (policy ACCEPT 1500K packets, 2200M bytes)
 pkts bytes target     prot opt in     out     source               destination         

Chain FORWARD (policy DROP 0 packets, 0 bytes)
 pkts bytes target     prot opt in     out     source               destination         
    5   300 DOCKER-USER  all  --  *      *       0.0.0.0/0            0.0.0.0/0           
    0     0            all  --  *      *       0.0.0.0/0            0.0.0.0/0            /* count only */

Chain OUTPUT (policy ACCEPT 0 packets, 0 bytes)
 pkts bytes target     prot opt in     out     source               destination         

Chain DOCKER-USER (1 references)
 pkts bytes target     prot opt in     out     source               destination         
    5   300 RETURN     all  --  *      *       0.0.0.0/0            0.0.0.0/0           
`

const rawList = `Chain PREROUTING (policy ACCEPT 0 packets, 0 bytes)
 pkts bytes target     prot opt in     out     source               destination         
    0     0 DROP       all  --  !docker0 *       0.0.0.0/0            172.17.0.2          

Chain OUTPUT (policy ACCEPT 0 packets, 0 bytes)
 pkts bytes target     prot opt in     out     source               destination         
`

func tableNames(rs *Ruleset) string {
	var s []string
	for _, t := range rs.Tables {
		s = append(s, fmt.Sprintf("%s@%d:%d", t.Name, t.Line, len(t.Chains)))
	}
	return strings.Join(s, " ")
}

func TestParseListFindsTheTables(t *testing.T) {
	lineOf := func(s string) int { return strings.Count(s, "\n") }
	tests := []struct {
		name, in, want string
	}{
		{"nat, filter and raw pasted without command lines are told apart by their built-in chains",
			natList + "\n" + filterList + "\n" + rawList,
			fmt.Sprintf("nat@1:5 filter@%d:4 raw@%d:2", lineOf(natList+"\n")+1, lineOf(natList+"\n"+filterList+"\n")+1)},
		{"a command line names the table even when the chains would say otherwise",
			"# iptables -t security -L -n -v\n" + filterList, "security@2:4"},
		{"a sudo prompt with -nvL and --table= is understood",
			"$ sudo iptables --table=raw -nvL\n" + rawList, "raw@2:2"},
		{"a root prompt without -t means the filter table",
			"root@host:~# iptables -L -nv\n" + rawList, "filter@2:2"},
		{"a single DOCKER chain with DNAT rules is guessed to be nat",
			natList[strings.Index(natList, "Chain DOCKER"):], "nat@1:1"},
		{"a single FORWARD chain is guessed to be filter",
			filterList[strings.Index(filterList, "Chain FORWARD"):strings.Index(filterList, "Chain OUTPUT")], "filter@1:1"},
		{"-L DOCKER with its command line takes the table from it",
			"# iptables -t nat -L DOCKER -n -v\n" + filterList[strings.Index(filterList, "Chain DOCKER-USER"):], "nat@2:1"},
		{"iptables-nft's legacy warning is ignored",
			"# Warning: iptables-legacy tables present, use iptables-legacy to see them\n" + rawList, "raw@2:2"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rs, err := ParseList([]byte(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			if got := tableNames(rs); got != tc.want {
				t.Errorf("tables %q, want %q", got, tc.want)
			}
		})
	}
}

func TestParseListReadsHeadersAndRows(t *testing.T) {
	rs, err := ParseList([]byte(strings.ReplaceAll(natList+"\n"+filterList, "\n", "\r\n")))
	if err != nil {
		t.Fatal(err)
	}
	if !rs.CRLF {
		t.Error("CRLF not detected")
	}
	nat, filter := rs.Table(TableNAT), rs.Table(TableFilter)
	pre := nat.Chain(ChainPrerouting)
	if !pre.Builtin || pre.Policy != "ACCEPT" || pre.References != -1 || pre.Counters == nil {
		t.Errorf("PREROUTING = %+v", pre)
	}
	r := pre.Rules[0]
	if *r.Counters != (Counters{Packets: 123000, Bytes: 99000000, Approximate: true}) {
		t.Errorf("counters %+v", *r.Counters)
	}
	if d := nat.Chain("DOCKER"); d.Builtin || d.References != 2 || d.Policy != "" {
		t.Errorf("DOCKER = %+v", d)
	}
	dnat := nat.Chain("DOCKER").Rules[0]
	if dnat.NATTo() != "172.17.0.2:80" || dnat.Proto() != "tcp" || dnat.InIface != (Negatable{"docker0", true}) {
		t.Errorf("DNAT rule: %s", dnat.Spec())
	}
	if in := filter.Chain(ChainInput); *in.Counters != (Counters{1500000, 2200000000, true}) || in.Policy != "ACCEPT" {
		t.Errorf("INPUT = %+v", in)
	}
	count := filter.Chain(ChainForward).Rules[1]
	if count.Target != "" || count.Comment() != "count only" || count.Position != 2 {
		t.Errorf("rule without target: %+v", count)
	}
	if m := nat.Chain(ChainPostrouting).Rules[0]; m.OutIface != (Negatable{"docker0", true}) || m.Source.Value != "172.17.0.0/16" || !m.Protocol.IsZero() {
		t.Errorf("MASQUERADE rule: %s", m.Spec())
	}
}

func TestParseListConvertsExtras(t *testing.T) {
	tests := []struct {
		name, target, extras, want string
		unparsed                   []string
	}{
		{"a port range", "ACCEPT", "tcp dpts:7000:7002", "-m tcp --dport 7000:7002 -j ACCEPT", nil},
		{"negated source ports and flags", "DROP", "tcp spts:!1:1023 flags:0x12/0x02", "-m tcp ! --sport 1:1023 --tcp-flags SYN,ACK SYN -j DROP", nil},
		{"multiport with a negation", "ACCEPT", "multiport dports  !22,23", "-m multiport ! --dports 22,23 -j ACCEPT", nil},
		{"addrtype and conntrack", "DROP", "ADDRTYPE match src-type !LOCAL ctstate INVALID", "-m addrtype ! --src-type LOCAL -m conntrack --ctstate INVALID -j DROP", nil},
		{"negated conntrack keys", "ACCEPT", "! ctorigdst 192.0.2.0/24 ctorigdstport 443", "-m conntrack ! --ctorigdst 192.0.2.0/24 --ctorigdstport 443 -j ACCEPT", nil},
		{"a comment with stars and quotes", "DROP", `/* a "b" * c */`, `-m comment --comment "a \"b\" * c" -j DROP`, nil},
		{"mark match negated", "RETURN", "mark match ! 0x1", "-m mark ! --mark 0x1 -j RETURN", nil},
		{"MARK and", "MARK", "MARK and 0xff", "-j MARK --set-xmark 0x0/0xffffff00", nil},
		{"a goto", "DOCKER-CT", "[goto] ", "-g DOCKER-CT", nil},
		{"LOG with flags and the default level", "LOG", `limit: avg 3/min burst 5 LOG flags 10 level 4 prefix "in: "`, `-m limit --limit 3/min -j LOG --log-prefix "in: " --log-tcp-options --log-uid`, nil},
		{"recent in save order", "DROP", "recent: CHECK seconds: 60 hit_count: 4 name: SSH side: source mask: 255.255.255.255", "-m recent --rcheck --seconds 60 --hitcount 4 --name SSH --mask 255.255.255.255 --rsource -j DROP", nil},
		{"SNAT to", "SNAT", "to:1.2.3.4 random", "-j SNAT --to-source 1.2.3.4 --random", nil},
		{"an unknown match stays verbatim", "ACCEPT", "tcp dpt:80 physdev match --physdev-in eth0 state NEW", "-m tcp --dport 80 -m state --state NEW -j ACCEPT", []string{"physdev", "match", "--physdev-in", "eth0"}},
		{"to: of a target that is not NAT stays verbatim", "ACCEPT", "to:1.2.3.4", "-j ACCEPT", []string{"to:1.2.3.4"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			row := fmt.Sprintf("    0     0 %-10s 0    --  *      *       0.0.0.0/0            0.0.0.0/0            %s", tc.target, tc.extras)
			rs, err := ParseList([]byte("Chain X (1 references)\n pkts bytes target     prot opt in     out     source               destination\n" + row + "\n"))
			if err != nil {
				t.Fatal(err)
			}
			r := rs.Tables[0].Chains[0].Rules[0]
			spec := r.Spec()
			if len(r.Unparsed) > 0 {
				spec = (&Rule{Matches: r.Matches, Target: r.Target, Goto: r.Goto, TargetOptions: r.TargetOptions}).Spec()
			}
			if spec != tc.want {
				t.Errorf("spec %q, want %q", spec, tc.want)
			}
			if d := cmp.Diff(tc.unparsed, r.Unparsed); d != "" {
				t.Errorf("unparsed (-want +got):\n%s", d)
			}
			if r.Raw != row || r.Line != 3 {
				t.Errorf("raw %q line %d", r.Raw, r.Line)
			}
		})
	}
}

func TestParseListRejectsWhatIsNotListOutput(t *testing.T) {
	hdr := "Chain INPUT (policy ACCEPT)\ntarget     prot opt source               destination\n"
	tests := []struct {
		name, in string
		line     int
	}{
		{"a rule before any Chain header", "ACCEPT     all  --  0.0.0.0/0            0.0.0.0/0\n", 1},
		{"a rule before the column header", "\nChain INPUT (policy ACCEPT)\nACCEPT     all  --  0.0.0.0/0            0.0.0.0/0\n", 3},
		{"a rule with too few columns", hdr + "ACCEPT     all  --  0.0.0.0/0\n", 3},
		{"a rule whose source is not an address", hdr + "ACCEPT     all  --  nowhere   0.0.0.0/0\n", 3},
		{"garbage after a chain", hdr + "ACCEPT all -- 0.0.0.0/0 0.0.0.0/0\nhello world\n", 4},
		{"binary data", hdr + "\x00\x01\x02\n", 3},
		{"counters that are not numbers", "Chain INPUT (policy ACCEPT 0 packets, 0 bytes)\n pkts bytes target prot opt in out source destination\n 1x 2 ACCEPT all -- * * 0.0.0.0/0 0.0.0.0/0\n", 3},
		{"a malformed chain header", "Chain INPUT policy ACCEPT\n", 1},
		{"a chain listed twice in one table", "# iptables -L\n" + hdr + "# iptables -L\n" + hdr, 5},
	}
	for _, tc := range tests {
		t.Run(tc.name+" is an error on line "+fmt.Sprint(tc.line), func(t *testing.T) {
			_, err := ParseList([]byte(tc.in))
			var pe *Error
			if !errors.As(err, &pe) {
				t.Fatalf("err = %v, want *Error", err)
			}
			if pe.Line != tc.line {
				t.Errorf("line %d, want %d (%v)", pe.Line, tc.line, err)
			}
		})
	}
	for _, in := range []string{"", "\n\n", "# iptables -L -n\n", "\r\n"} {
		if _, err := ParseList([]byte(in)); !errors.Is(err, ErrEmpty) {
			t.Errorf("ParseList(%q) = %v, want ErrEmpty", in, err)
		}
	}
}

func TestParseListRefusesAHugeLine(t *testing.T) {
	big := strings.Repeat("x", 10<<20)
	for _, crlf := range []string{"\n", "\r\n"} {
		in := "Chain X (0 references)" + crlf + "target prot opt source destination" + crlf + "ACCEPT all -- 0.0.0.0/0 0.0.0.0/0 /* " + big + " */" + crlf
		_, err := ParseList([]byte(in))
		var pe *Error
		if !errors.As(err, &pe) || pe.Line != 3 || !strings.Contains(pe.Msg, "bytes") || len(pe.Text) > maxShown+40 {
			t.Fatalf("err = %.300v; want an *Error at line 3 naming the length", err)
		}
	}
}

func TestParseListReadsRowsAcrossItsCopyChunks(t *testing.T) {
	// ParseList copies its input listChunk bytes (whole lines) at a time;
	// rows, line numbers and errors must not depend on where a chunk ends.
	long := strings.Repeat("y", listChunk+listChunk/2) // longer than a chunk, shorter than MaxLine
	in := string(bigList(3000)) +                      // several chunks of ordinary rows
		"    0     0 ACCEPT     6    --  *      *       0.0.0.0/0            0.0.0.0/0            /* " + long + " */\r\n" +
		dockerRows(50)
	data := []byte(in)
	lines := strings.Split(in, "\n")

	t.Run("every rule points at its own line and text", func(t *testing.T) {
		rs, err := ParseList(data)
		if err != nil {
			t.Fatal(err)
		}
		if !rs.CRLF {
			t.Error("CRLF not noticed on a line after the first chunk")
		}
		n := 0
		for _, tb := range rs.Tables {
			for _, c := range tb.Chains {
				for _, r := range c.Rules {
					n++
					if want := strings.TrimSuffix(lines[r.Line-1], "\r"); r.Raw != want {
						t.Fatalf("rule on line %d has Raw %.60q, want %.60q", r.Line, r.Raw, want)
					}
					if r.Table != tb.Name {
						t.Fatalf("rule on line %d says table %s, listed in %s", r.Line, r.Table, tb.Name)
					}
				}
			}
		}
		if n < 3050 {
			t.Errorf("%d rules, want at least 3050", n)
		}
		for i := range data {
			data[i] = 'z' // the result must not share the caller's buffer
		}
		copy(data, in)
		if got := rs.Tables[len(rs.Tables)-1].Chains[0].Name; got == "" || strings.Contains(string(got), "z") {
			t.Errorf("chain name %q changed with the input buffer", got)
		}
	})

	t.Run("an error in a later chunk names its line", func(t *testing.T) {
		for _, at := range []int{len(lines) / 2, len(lines) - 3} {
			bad := strings.Join(lines[:at], "\n") + "\nhello world\n" + strings.Join(lines[at:], "\n")
			_, err := ParseList([]byte(bad))
			var pe *Error
			if !errors.As(err, &pe) || pe.Line != at+1 || pe.Text != "hello world" {
				t.Errorf("garbage on line %d: err = %v", at+1, err)
			}
		}
	})
}

// dockerRows is the last n rows of bigList(n): rules of its DOCKER chain.
func dockerRows(n int) string {
	l := string(bigList(n))
	l = l[strings.Index(l, "Chain DOCKER "):]
	return l[strings.Index(l, "destination\n")+len("destination\n"):]
}

// bigList is a generated -L text of n DOCKER rules plus the usual chains.
func bigList(n int) []byte {
	var b strings.Builder
	b.WriteString("# iptables -t nat -L -n -v\n" + natList + "\n# iptables -L -n -v\n")
	b.WriteString(filterList)
	b.WriteString("\nChain DOCKER (1 references)\n pkts bytes target     prot opt in     out     source               destination\n")
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, " %4dK   %3dM ACCEPT     6    --  !docker0 docker0  0.0.0.0/0            172.17.%d.%d          tcp dpt:%d /* container %d */\n",
			i%1000, i%999, i/250%256, i%250+2, 1024+i%60000, i)
	}
	return []byte(b.String())
}

func BenchmarkParseList(b *testing.B) {
	data := bigList(10000)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := ParseList(data); err != nil {
			b.Fatal(err)
		}
	}
}

func TestParseListRefusesListingsWithoutN(t *testing.T) {
	head := "Chain INPUT (policy ACCEPT 0 packets, 0 bytes)\n pkts bytes target     prot opt in     out     source               destination\n"
	headNoV := "Chain INPUT (policy ACCEPT)\ntarget     prot opt source               destination\n"
	for _, c := range []struct {
		name, in, word string
	}{
		{"anywhere as the source", head + "    0     0 ACCEPT     all  --  lo     *       anywhere             0.0.0.0/0\n", "anywhere"},
		{"anywhere on both sides, without -v", headNoV + "ACCEPT     all  --  anywhere             anywhere\n", "anywhere"},
		{"a host name", headNoV + "DROP       tcp  --  db.example.com       10.0.0.1\n", "db.example.com"},
		{"localhost", head + "    0     0 ACCEPT     all  --  *      *       localhost            0.0.0.0/0\n", "localhost"},
		{"a negated host name", head + "    0     0 ACCEPT     all  --  *      *       0.0.0.0/0           !gw.lan/24\n", "gw.lan/24"},
		{"a service name", head + "    0     0 ACCEPT     tcp  --  *      *       0.0.0.0/0            0.0.0.0/0            tcp dpt:http\n", "dpt:http"},
		{"a service name in a range", head + "    0     0 ACCEPT     tcp  --  *      *       0.0.0.0/0            0.0.0.0/0            tcp spts:ftp-data:ftp\n", "spts:ftp-data:ftp"},
		{"multiport service names", head + "    0     0 ACCEPT     tcp  --  *      *       0.0.0.0/0            0.0.0.0/0            multiport dports http,https\n", "dports http,https"},
	} {
		t.Run(c.name+" is refused with its line and the advice", func(t *testing.T) {
			for _, eol := range []string{"\n", "\r\n"} {
				_, err := ParseList([]byte(strings.ReplaceAll(c.in, "\n", eol)))
				var pe *Error
				if !errors.As(err, &pe) || pe.Line != 3 || !strings.Contains(pe.Msg, "iptables -L -n -v") || !strings.Contains(pe.Msg, strconv.Quote(c.word)) {
					t.Errorf("err = %v; want line 3, %q and the advice", err, c.word)
				}
			}
		})
	}
	t.Run("numeric listings still read", func(t *testing.T) {
		in := head + "    0     0 ACCEPT     tcp  --  *      *       10.0.0.0/8           0.0.0.0/0            tcp dpts:1000:2000 multiport dports 80,443\n"
		if _, err := Parse([]byte(in)); err != nil {
			t.Fatal(err)
		}
	})
}

func TestListCRLFParsesAsLF(t *testing.T) {
	files, _ := filepath.Glob("testdata/list/*.L-*.txt")
	if len(files) == 0 {
		t.Fatal("no -L samples")
	}
	for _, f := range files {
		lf, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		want, err := ParseList(lf)
		if err != nil {
			t.Fatal(err)
		}
		got, err := ParseList(bytes.ReplaceAll(lf, []byte("\n"), []byte("\r\n")))
		if err != nil {
			t.Fatalf("%s with CRLF: %v", f, err)
		}
		if diff := cmp.Diff(want.Tables, got.Tables, cmpopts.IgnoreUnexported(Table{})); diff != "" {
			t.Errorf("%s: CRLF model differs (-LF +CRLF):\n%s", f, diff)
		}
	}
}

func TestApproximateCountersAreNotSavedAsExact(t *testing.T) {
	in := "Chain INPUT (policy ACCEPT 12K packets, 3M bytes)\n" +
		" pkts bytes target     prot opt in     out     source               destination\n" +
		"  12K  720K ACCEPT     all  --  lo     *       0.0.0.0/0            0.0.0.0/0\n" +
		"    3   180 DROP       all  --  *      *       10.0.0.1             0.0.0.0/0\n"
	rs, err := ParseList([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	c := rs.Tables[0].Chains[0]
	if !c.Counters.Approximate || !c.Rules[0].Counters.Approximate || c.Rules[1].Counters.Approximate {
		t.Fatalf("approximate: policy %v, rule 1 %v, rule 2 %v", c.Counters.Approximate, c.Rules[0].Counters.Approximate, c.Rules[1].Counters.Approximate)
	}
	if c.Rules[0].Counters.Packets != 12000 {
		t.Errorf("12K read as %d packets", c.Rules[0].Counters.Packets)
	}
	var out bytes.Buffer
	if err := rs.WriteSave(&out); err != nil {
		t.Fatal(err)
	}
	for _, l := range []string{"# iptscope: counters left out", ":INPUT ACCEPT [0:0]\n", "\n-A INPUT -i lo -j ACCEPT\n", "\n[3:180] -A INPUT -s 10.0.0.1/32 -j DROP\n"} {
		if !strings.Contains(out.String(), l) {
			t.Errorf("save text lacks %q:\n%s", l, out.String())
		}
	}
	if strings.Contains(out.String(), "12000") {
		t.Errorf("rounded counters printed as exact:\n%s", out.String())
	}
	if _, err := ParseSave(out.Bytes()); err != nil {
		t.Errorf("the save text does not parse: %v", err)
	}
	t.Run("exact -x counters are kept", func(t *testing.T) {
		rs, err := ParseList([]byte(strings.NewReplacer("12K", "12345", "3M", "3000000", "720K", "740700").Replace(in)))
		if err != nil {
			t.Fatal(err)
		}
		out.Reset()
		rs.WriteSave(&out)
		if s := out.String(); strings.Contains(s, "iptscope:") || !strings.Contains(s, ":INPUT ACCEPT [12345:3000000]") || !strings.Contains(s, "[12345:740700] -A INPUT -i lo -j ACCEPT") {
			t.Errorf("exact counters not kept:\n%s", s)
		}
	})
}
