package render

import (
	"bytes"

	"github.com/iptscope/iptscope/parse"
)

// MatchSummary describes what a rule matches in the compact words of
// `iptables -L`, with negations kept: "! -i docker0 tcp dpt:8080",
// "-s 172.17.0.0/16 ! -o docker0", "dst-type LOCAL". It returns "" for a
// rule that matches every packet.
func MatchSummary(r *parse.Rule) string {
	return string(appendMatchSummary(nil, r))
}

// appendMatchSummary appends MatchSummary(r) to b. The summaries are built
// in place, without a string per part: the renderers call this for every
// rule of dumps with 100,000 of them.
func appendMatchSummary(b []byte, r *parse.Rule) []byte {
	start := len(b)
	// part starts a part: a separating space unless it is the first. A part
	// that turns out empty is taken back with unpart.
	part := func() int {
		mark := len(b)
		if mark > start {
			b = append(b, ' ')
		}
		return mark
	}
	unpartIfEmpty := func(mark int) {
		if n := len(b) - mark; n == 0 || n == 1 && mark > start {
			b = b[:mark]
		}
	}
	field := func(flag string, n parse.Negatable) {
		if n.IsZero() {
			return
		}
		part()
		if n.Negated {
			b = append(b, "! "...)
		}
		b = append(b, flag...)
		b = append(b, ' ')
		b = append(b, n.Value...)
	}
	field("-s", r.Source)
	field("-d", r.Destination)
	field("-i", r.InIface)
	field("-o", r.OutIface)
	protoShown := false
	for _, m := range r.Matches {
		if m.Name == r.Protocol.Value && !r.Protocol.Negated {
			protoShown = true
		}
	}
	if !protoShown && !r.Protocol.IsZero() && r.Protocol.Value != "all" && r.Protocol.Value != "0" {
		field("-p", r.Protocol)
	}
	if !r.Fragment.IsZero() {
		part()
		if r.Fragment.Negated {
			b = append(b, "! -f"...)
		} else {
			b = append(b, "-f"...)
		}
	}
	for i := range r.Matches {
		mark := part()
		b = appendMatchText(b, &r.Matches[i])
		unpartIfEmpty(mark)
	}
	for _, u := range r.Unparsed {
		mark := part()
		b = append(b, u...)
		unpartIfEmpty(mark)
	}
	return b
}

// portWord is the word iptables -L abbreviates a port option to ("dpt:"),
// "" for any other option.
func portWord(name string) string {
	switch name {
	case "dport", "destination-port":
		return "dpt:"
	case "sport", "source-port":
		return "spt:"
	}
	return ""
}

// appendValue appends the option's values joined by a space (Option.Value).
func appendValue(b []byte, o *parse.Option) []byte {
	for i, v := range o.Values {
		if i > 0 {
			b = append(b, ' ')
		}
		b = append(b, v...)
	}
	return b
}

// valueEmpty reports whether o.Value() is "" without joining the values.
func valueEmpty(o *parse.Option) bool {
	return len(o.Values) == 0 || len(o.Values) == 1 && o.Values[0] == ""
}

// appendMatchText appends one match, compactly.
func appendMatchText(b []byte, m *parse.Match) []byte {
	switch m.Name {
	case "tcp", "udp", "sctp", "udplite":
		b = append(b, m.Name...)
		for i := range m.Options {
			o := &m.Options[i]
			b = append(b, ' ')
			if o.Negated {
				b = append(b, '!')
			}
			if w := portWord(o.Name); w != "" {
				vstart := len(b) + len(w)
				b = append(b, w...)
				b = appendValue(b, o)
				if bytes.IndexByte(b[vstart:], ':') >= 0 {
					// "dpts:1000:2000": the word in the plural.
					b = append(b[:vstart-1], append([]byte("s:"), b[vstart:]...)...)
				}
				continue
			}
			b = append(b, o.Name...)
			b = append(b, ' ')
			b = appendValue(b, o)
		}
		return b
	case "comment":
		for i := range m.Options {
			if o := &m.Options[i]; o.Name == "comment" {
				b = append(b, "/* "...)
				b = appendValue(b, o)
				return append(b, " */"...)
			}
		}
	case "addrtype", "conntrack", "state", "multiport", "mark", "set", "physdev":
		// Parts joined by a space, each trimmed, empty ones kept (as
		// strings.Join of strings.TrimSpace parts would).
		n := 0
		if m.Name == "multiport" || m.Name == "mark" || m.Name == "set" {
			b = append(b, m.Name...)
			n++
		}
		for i := range m.Options {
			o := &m.Options[i]
			if n > 0 {
				b = append(b, ' ')
			}
			n++
			ps := len(b)
			if o.Negated {
				b = append(b, "! "...)
			}
			name := o.Name
			if name == "match-set" {
				name = "set"
			}
			b = append(b, name...)
			b = append(b, ' ')
			b = appendValue(b, o)
			if t := bytes.TrimSpace(b[ps:]); len(t) != len(b)-ps {
				b = append(b[:ps], t...)
			}
		}
		return b
	}
	b = append(b, "-m "...)
	b = append(b, m.Name...)
	for i := range m.Options {
		o := &m.Options[i]
		b = append(b, ' ')
		if o.Negated {
			b = append(b, "! "...)
		}
		b = append(b, "--"...)
		b = append(b, o.Name...)
		if !valueEmpty(o) {
			b = append(b, ' ')
			b = appendValue(b, o)
		}
	}
	return b
}

// TargetSummary describes the target and its options: "DNAT to:172.17.0.2:80",
// "REJECT reject-with icmp-port-unreachable", "goto KUBE-SEP-X", "DOCKER".
func TargetSummary(r *parse.Rule) string {
	return string(appendTargetSummary(nil, r))
}

// appendTargetSummary appends TargetSummary(r) to b.
func appendTargetSummary(b []byte, r *parse.Rule) []byte {
	if r.Target == "" {
		return b
	}
	if r.Goto {
		b = append(b, "goto "...)
	}
	b = append(b, r.Target...)
	for i := range r.TargetOptions {
		o := &r.TargetOptions[i]
		switch o.Name {
		case "to-destination", "to-source", "to":
			b = append(b, " to:"...)
			b = appendValue(b, o)
		case "to-ports":
			b = append(b, " ports:"...)
			b = appendValue(b, o)
		default:
			if o.Negated {
				b = append(b, " !"...)
			}
			b = append(b, ' ')
			b = append(b, o.Name...)
			if !valueEmpty(o) {
				b = append(b, ' ')
				b = appendValue(b, o)
			}
		}
	}
	return b
}
