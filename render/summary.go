package render

import (
	"strings"

	"github.com/iptscope/iptscope/parse"
)

// MatchSummary describes what a rule matches in the compact words of
// `iptables -L`, with negations kept: "! -i docker0 tcp dpt:8080",
// "-s 172.17.0.0/16 ! -o docker0", "dst-type LOCAL". It returns "" for a
// rule that matches every packet.
func MatchSummary(r *parse.Rule) string {
	var parts []string
	add := func(s string) {
		if s != "" {
			parts = append(parts, s)
		}
	}
	field := func(flag string, n parse.Negatable) {
		if n.IsZero() {
			return
		}
		if n.Negated {
			add("! " + flag + " " + n.Value)
		} else {
			add(flag + " " + n.Value)
		}
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
		if r.Fragment.Negated {
			add("! -f")
		} else {
			add("-f")
		}
	}
	for _, m := range r.Matches {
		add(matchText(m))
	}
	for _, u := range r.Unparsed {
		add(u)
	}
	return strings.Join(parts, " ")
}

// portWords are the option names iptables -L abbreviates for port matches.
var portWords = map[string]string{
	"dport": "dpt:", "destination-port": "dpt:", "sport": "spt:", "source-port": "spt:",
}

func neg(o parse.Option) string {
	if o.Negated {
		return "!"
	}
	return ""
}

// matchText renders one match compactly.
func matchText(m parse.Match) string {
	var b strings.Builder
	switch m.Name {
	case "tcp", "udp", "sctp", "udplite":
		b.WriteString(m.Name)
		for _, o := range m.Options {
			b.WriteByte(' ')
			if w, ok := portWords[o.Name]; ok {
				if strings.Contains(o.Value(), ":") {
					w = strings.TrimSuffix(w, ":") + "s:"
				}
				b.WriteString(neg(o) + w + o.Value())
				continue
			}
			b.WriteString(neg(o) + o.Name + " " + o.Value())
		}
		return b.String()
	case "comment":
		for _, o := range m.Options {
			if o.Name == "comment" {
				return "/* " + o.Value() + " */"
			}
		}
	case "addrtype", "conntrack", "state", "multiport", "mark", "set", "physdev":
		var parts []string
		if m.Name == "multiport" || m.Name == "mark" || m.Name == "set" {
			parts = append(parts, m.Name)
		}
		for _, o := range m.Options {
			s := neg(o)
			if s != "" {
				s += " "
			}
			name := o.Name
			if name == "match-set" {
				name = "set"
			}
			parts = append(parts, strings.TrimSpace(s+name+" "+o.Value()))
		}
		return strings.Join(parts, " ")
	}
	b.WriteString("-m " + m.Name)
	for _, o := range m.Options {
		b.WriteByte(' ')
		if o.Negated {
			b.WriteString("! ")
		}
		b.WriteString("--" + o.Name)
		if v := o.Value(); v != "" {
			b.WriteString(" " + v)
		}
	}
	return b.String()
}

// TargetSummary describes the target and its options: "DNAT to:172.17.0.2:80",
// "REJECT reject-with icmp-port-unreachable", "goto KUBE-SEP-X", "DOCKER".
func TargetSummary(r *parse.Rule) string {
	if r.Target == "" {
		return ""
	}
	s := string(r.Target)
	if r.Goto {
		s = "goto " + s
	}
	for _, o := range r.TargetOptions {
		switch o.Name {
		case "to-destination", "to-source", "to":
			s += " to:" + o.Value()
		case "to-ports":
			s += " ports:" + o.Value()
		default:
			if o.Negated {
				s += " !"
			}
			s += " " + o.Name
			if v := o.Value(); v != "" {
				s += " " + v
			}
		}
	}
	return s
}
