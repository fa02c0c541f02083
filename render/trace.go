package render

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/iptscope/iptscope/trace"
)

// TraceSchema names the JSON document of `iptscope trace -o json`
// (docs/schema/trace.v1.json).
const TraceSchema = "iptscope.trace/v1"

// TraceDoc is `iptscope trace -o json`. Field names are stable.
type TraceDoc struct {
	Schema      string `json:"schema"`
	ToolVersion string `json:"tool_version"`
	// Source is "live" or the file read.
	Source  string      `json:"source"`
	Packet  TracePacket `json:"packet"`
	Final   TracePacket `json:"final"`
	Verdict string      `json:"verdict"`
	Reaches string      `json:"reaches"`
	// Container, AnsweredBy: "" is written as null.
	Container  *string `json:"container"`
	AnsweredBy *string `json:"answered_by"`
	Answers    *bool   `json:"answers"`
	Reason     string  `json:"reason"`
	// Route is the routing decision; null when the trace ended before it.
	Route *trace.Route `json:"route"`
	// DecidedBy is the index in Steps of the deciding step; null when the
	// packet was accepted all along.
	DecidedBy *int              `json:"decided_by"`
	Steps     []TraceStep       `json:"steps"`
	Backends  []string          `json:"backends"`
	Notes     []string          `json:"notes"`
	Names     map[string]string `json:"names"`
}

// TracePacket is a packet in TraceDoc. In is null for a packet the host
// sends itself.
type TracePacket struct {
	Proto string  `json:"proto"`
	Src   string  `json:"src"`
	Sport int     `json:"sport"`
	Dst   string  `json:"dst"`
	Dport int     `json:"dport"`
	In    *string `json:"in"`
	State string  `json:"state"`
}

// TraceStep is one step in TraceDoc. Kind is "rule" (a rule that matched
// or could not be decided), "policy", "end" (a user chain ran out: back to
// its caller) or "kernel" (routing, the bridge, a socket, the wire: hook,
// table and chain are null).
type TraceStep struct {
	Kind    string  `json:"kind"`
	Hook    *string `json:"hook"`
	Table   *string `json:"table"`
	Chain   *string `json:"chain"`
	Backend *string `json:"backend"`
	Rule    *int    `json:"rule"`
	Line    *int    `json:"line"`
	Handle  *int    `json:"handle"`
	Target  string  `json:"target"`
	Text    string  `json:"text"`
	Note    *string `json:"note"`
	Unknown *string `json:"unknown"`
	Replay  bool    `json:"replay"`
	Decides bool    `json:"decides"`
}

func strOrNil(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func tracePacket(p trace.Packet) TracePacket {
	return TracePacket{Proto: p.Proto, Src: p.Src.String(), Sport: int(p.SrcPort), Dst: p.Dst.String(), Dport: int(p.DstPort), In: strOrNil(p.InIface), State: string(p.State)}
}

// NewTraceDoc is the JSON document of a trace.
func NewTraceDoc(r *trace.Result, source, toolVersion string) TraceDoc {
	d := TraceDoc{
		Schema: TraceSchema, ToolVersion: toolVersion, Source: source,
		Packet: tracePacket(r.Packet), Final: tracePacket(r.Final),
		Verdict: string(r.Verdict), Reaches: string(r.Reaches),
		Container: strOrNil(r.Container), AnsweredBy: strOrNil(r.AnsweredBy), Answers: r.Answers,
		Reason: r.Reason, Route: r.Route, Steps: []TraceStep{},
		Backends: r.Backends, Notes: r.Notes, Names: r.Names,
	}
	if d.Backends == nil {
		d.Backends = []string{}
	}
	if d.Notes == nil {
		d.Notes = []string{}
	}
	if d.Names == nil {
		d.Names = map[string]string{}
	}
	if r.Decider >= 0 {
		i := r.Decider
		d.DecidedBy = &i
	}
	for i, s := range r.Steps {
		ts := TraceStep{Kind: stepKind(s), Target: s.Target, Text: s.Text, Note: strOrNil(s.Note), Unknown: strOrNil(s.Unknown), Replay: s.Replay, Decides: i == r.Decider}
		if !s.IsKernel() {
			h, t, c := string(s.Hook), string(s.Table), string(s.Chain)
			ts.Hook, ts.Table, ts.Chain, ts.Backend = &h, &t, &c, strOrNil(s.Backend)
			if s.Rule > 0 {
				n, l := s.Rule, s.Line
				ts.Rule, ts.Line = &n, &l
				if s.Handle > 0 {
					hd := s.Handle
					ts.Handle = &hd
				}
			}
		}
		d.Steps = append(d.Steps, ts)
	}
	return d
}

func stepKind(s trace.Step) string {
	switch {
	case s.IsKernel():
		return "kernel"
	case s.Rule > 0:
		return "rule"
	case strings.HasPrefix(s.Text, "policy "):
		return "policy"
	}
	return "end"
}

// TraceJSON writes the trace as iptscope.trace/v1.
func TraceJSON(w io.Writer, r *trace.Result, source, toolVersion string) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(NewTraceDoc(r, source, toolVersion))
}

// TraceSummary is the path on one line: the NAT rewrites, the routing
// decision's outcome and the deciding rule, e.g. "from 198.18.0.1:
// PREROUTING nat DOCKER rule 3 DNAT → 172.17.0.2:80 (web1) → FORWARD
// filter DOCKER-USER rule 1 DROP".
func TraceSummary(r *trace.Result) string {
	parts := []string{}
	for i, s := range r.Steps {
		switch {
		case i == r.Decider && !s.IsKernel():
			p := fmt.Sprintf("%s %s %s %s %s", s.Hook, s.Table, s.Chain, ruleRef(s), s.Target)
			if s.Unknown != "" {
				p += " (cannot tell: " + s.Unknown + ")"
			}
			parts = append(parts, p)
		case i == r.Decider:
			parts = append(parts, strings.TrimPrefix(s.Text, "routing decision: "))
		case s.Note != "" && !s.IsKernel() && isRewrite(s.Target):
			parts = append(parts, fmt.Sprintf("%s %s %s %s %s", s.Hook, s.Table, s.Chain, ruleRef(s), s.Note))
		}
	}
	switch {
	case r.Verdict == trace.Accept && r.Container != "":
		parts = append(parts, "container "+r.Container)
	case r.Verdict == trace.Accept && r.Reaches == trace.ReachHost:
		h := "host"
		if r.AnsweredBy != "" {
			h += " (" + r.AnsweredBy + ")"
		}
		parts = append(parts, h)
	case r.Verdict == trace.Accept:
		parts = append(parts, string(r.Reaches))
	}
	return "from " + r.Packet.Src.String() + ": " + strings.Join(parts, " → ")
}

func isRewrite(target string) bool {
	switch target {
	case "DNAT", "SNAT", "MASQUERADE", "REDIRECT":
		return true
	}
	return false
}

func ruleRef(s trace.Step) string {
	if s.Rule == 0 {
		return "policy"
	}
	return "rule " + strconv.Itoa(s.Rule)
}

// TraceText writes the trace as a short tree, hook by hook, with the
// deciding step highlighted and its rule shown in full, then the verdict.
//
//	from 198.18.0.2: PREROUTING nat DOCKER rule 1 DNAT → 172.17.0.2:80 (web) → ...
//	tcp 198.18.0.2:40000 → 198.18.0.1:8080, new, in on tbhost0
//	├─ PREROUTING
//	│  ├─ nat PREROUTING rule 1 → DOCKER
//	│  └─ nat DOCKER rule 1 DNAT → 172.17.0.2:80 (web)
//	├─ routing decision: 172.17.0.2 (web) via 172.17.0.0/16 dev docker0: FORWARD
//	...
func TraceText(w io.Writer, r *trace.Result, o Options) error {
	pal := newPalette(o)
	var b strings.Builder
	fmt.Fprintln(&b, pal.bold(TraceSummary(r)))
	p := r.Packet
	in := "sent by the host"
	if p.InIface != "" {
		in = "in on " + p.InIface
	}
	fmt.Fprintf(&b, "%s %s → %s, %s, %s\n", p.Proto, addrPort(p.Src.String(), p.SrcPort), addrPort(p.Dst.String(), p.DstPort), p.State, in)

	// Group the steps: one node per hook (its rules under it, each with
	// the rule's text when it decides or rewrites), one per kernel step.
	type item struct{ line, text string }
	type node struct {
		head  string
		items []item
	}
	var nodes []node
	lastHook := ""
	for i, s := range r.Steps {
		decides := i == r.Decider
		mark := func(line string) string {
			if decides {
				return pal.red(pal.bold(line + "  ◀ decides"))
			}
			return line
		}
		if s.IsKernel() {
			nodes = append(nodes, node{head: mark(s.Text)})
			lastHook = ""
			continue
		}
		hook := string(s.Hook)
		if s.Backend != "" && len(r.Backends) > 1 {
			hook += " (" + s.Backend + ")"
		}
		if hook != lastHook {
			nodes = append(nodes, node{head: hook})
			lastHook = hook
		}
		line := fmt.Sprintf("%s %s %s", s.Table, s.Chain, ruleRef(s))
		switch {
		case s.Rule == 0 && strings.HasPrefix(s.Text, "policy "):
			line = fmt.Sprintf("%s %s policy %s", s.Table, s.Chain, s.Target)
		case s.Rule == 0:
			_, caller, _ := strings.Cut(s.Text, "back to ")
			line = fmt.Sprintf("%s %s: end, back to %s", s.Table, s.Chain, caller)
		case s.Unknown != "":
			line += " cannot be decided: " + s.Unknown
		case strings.HasPrefix(s.Note, s.Target):
			line += " " + s.Note
		case s.Note != "":
			line += " " + s.Target + ": " + s.Note
		case isVerdict(s.Target):
			line += " " + s.Target
		default:
			line += " → " + s.Target
		}
		if s.Replay {
			line += pal.dim(" (set up by the connection's first packet)")
		}
		it := item{line: mark(line)}
		if s.Rule > 0 && (decides || isRewrite(s.Target)) {
			it.text = pal.dim(s.Text)
		}
		n := &nodes[len(nodes)-1]
		n.items = append(n.items, it)
	}
	nodes = append(nodes, node{head: verdictLine(r, pal)})
	for i, n := range nodes {
		branch, cont := "├─ ", "│  "
		if i == len(nodes)-1 {
			branch, cont = "└─ ", "   "
		}
		fmt.Fprintln(&b, branch+n.head)
		for j, it := range n.items {
			sb, sc := "├─ ", "│  "
			if j == len(n.items)-1 {
				sb, sc = "└─ ", "   "
			}
			fmt.Fprintln(&b, cont+sb+it.line)
			if it.text != "" {
				fmt.Fprintln(&b, cont+sc+"   "+it.text)
			}
		}
	}
	for _, note := range r.Notes {
		fmt.Fprintln(&b, pal.dim("note: "+note))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func verdictLine(r *trace.Result, pal palette) string {
	ans := "cannot tell"
	if r.Answers != nil {
		ans = map[bool]string{true: "yes", false: "no"}[*r.Answers]
	}
	v := string(r.Verdict)
	switch r.Verdict {
	case trace.Accept:
		v = pal.green(v)
	case trace.Drop, trace.Reject:
		v = pal.red(v)
	default:
		v = pal.yellow(v)
	}
	where := string(r.Reaches)
	if r.Container != "" {
		where += " " + r.Container
	}
	s := fmt.Sprintf("%s, reaches %s, answers %s", v, where, ans)
	if r.AnsweredBy != "" && r.AnsweredBy != r.Container {
		s += " (" + r.AnsweredBy + ")"
	}
	if r.Reason != "" {
		s += ": " + r.Reason
	}
	return s
}

func isVerdict(t string) bool {
	switch t {
	case "ACCEPT", "DROP", "REJECT", "RETURN", "QUEUE", "NFQUEUE":
		return true
	}
	return false
}

func addrPort(a string, port uint16) string {
	if strings.Contains(a, ":") {
		return "[" + a + "]:" + strconv.Itoa(int(port))
	}
	return a + ":" + strconv.Itoa(int(port))
}
