package trace

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/iptscope/iptscope/parse"
	"github.com/iptscope/iptscope/snapshot"
)

// setMatch is -m set --match-set NAME FLAGS over the snapshot's ipsets
// (`ipset save`). Types it cannot read, counters conditions and sets the
// snapshot lacks cannot be decided.
func (e *engine) setMatch(m *parse.Match, p *pkt) (tri, string) {
	res := yes
	why := ""
	for _, o := range m.Options {
		switch o.Name {
		case "match-set":
			if len(o.Values) != 2 {
				return maybe, fmt.Sprintf("-m set --match-set %q: want NAME FLAGS", o.Value())
			}
			if e.snap.IPSets == nil {
				return maybe, fmt.Sprintf("set %s: the snapshot has no ipsets (ipset was not read)", o.Values[0])
			}
			s := e.snap.IPSet(o.Values[0])
			if s == nil {
				return maybe, fmt.Sprintf("set %s is not in the snapshot's ipsets", o.Values[0])
			}
			t, w := inSet(s, strings.Split(o.Values[1], ","), p)
			if t == maybe {
				return maybe, w
			}
			if t.negate(o.Negated) == no {
				res = no
			}
		case "return-nomatch", "update-counters", "update-subcounters", "no-update-counters", "no-update-subcounters":
		default:
			if res == yes {
				res, why = maybe, "-m set --"+o.Name+" is not modelled"
			}
		}
	}
	return res, why
}

// inSet reports whether the packet's fields named by dirs (src, dst) are a
// member of s.
func inSet(s *snapshot.IPSet, dirs []string, p *pkt) (tri, string) {
	kind, dims, _ := strings.Cut(s.Type, ":")
	parts := strings.Split(dims, ",")
	if len(dirs) < len(parts) {
		return maybe, fmt.Sprintf("set %s (%s) is matched with %d flags", s.Name, s.Type, len(dirs))
	}
	if kind != "hash" && kind != "bitmap" {
		return maybe, fmt.Sprintf("set %s: type %s is not modelled", s.Name, s.Type)
	}
	addr := func(i int) netip.Addr {
		if dirs[i] == "src" {
			return p.src
		}
		return p.dst
	}
	port := func(i int) uint16 {
		if dirs[i] == "src" {
			return p.sport
		}
		return p.dport
	}
	hit := false
	for _, mem := range s.Members {
		fields := strings.Fields(mem)
		if len(fields) == 0 {
			continue
		}
		nomatch := false
		for _, f := range fields[1:] {
			if f == "nomatch" {
				nomatch = true
			}
		}
		vals := strings.Split(fields[0], ",")
		if len(vals) != len(parts) {
			return maybe, fmt.Sprintf("set %s: member %q does not fit type %s", s.Name, mem, s.Type)
		}
		ok := true
		for i, d := range parts {
			var t tri
			switch d {
			case "ip", "net":
				t = memberAddr(vals[i], addr(i))
			case "port":
				t = memberPort(vals[i], p.proto, port(i))
			default:
				return maybe, fmt.Sprintf("set %s: type %s is not modelled", s.Name, s.Type)
			}
			if t == maybe {
				return maybe, fmt.Sprintf("set %s: member %q cannot be read", s.Name, mem)
			}
			if t == no {
				ok = false
			}
		}
		if ok {
			if nomatch {
				// Why: a hash:net nomatch entry excludes its (more
				// specific) prefix; this model honours it over any match.
				return no, ""
			}
			hit = true
		}
	}
	return triOf(hit), ""
}

func memberAddr(v string, a netip.Addr) tri {
	if lo, hi, ok := strings.Cut(v, "-"); ok {
		l, err1 := netip.ParseAddr(lo)
		h, err2 := netip.ParseAddr(hi)
		if err1 != nil || err2 != nil {
			return maybe
		}
		return triOf(l.Is4() == a.Is4() && l.Compare(a) <= 0 && a.Compare(h) <= 0)
	}
	p, ok := parsePrefix(v)
	if !ok {
		return maybe
	}
	return triOf(p.Addr().Is4() == a.Is4() && p.Contains(a))
}

// memberPort reads "80", "tcp:80", "udp:53", "tcp:8000-8010".
func memberPort(v, proto string, port uint16) tri {
	if pr, rest, ok := strings.Cut(v, ":"); ok {
		if !strings.EqualFold(pr, proto) {
			return no
		}
		v = rest
	}
	lo, hi, isRange := strings.Cut(v, "-")
	l, err := strconv.ParseUint(lo, 10, 16)
	if err != nil {
		return maybe
	}
	h := l
	if isRange {
		if h, err = strconv.ParseUint(hi, 10, 16); err != nil {
			return maybe
		}
	}
	return triOf(uint64(port) >= l && uint64(port) <= h)
}
