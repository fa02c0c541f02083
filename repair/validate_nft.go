package repair

import (
	"regexp"
	"strings"

	"github.com/iptscope/iptscope/diagnose"
	"github.com/iptscope/iptscope/snapshot"
)

// nftCommand is the shape of every command a plan may send to `nft -f`
// for Docker's table (diagnose/nft_plan.go): add or insert of a rule,
// chain, map or element, or the table itself, in "ip" or "ip6"
// docker-bridges only. Names are nft identifiers; anything else on the
// line is checked below.
var nftCommand = regexp.MustCompile(`^(add|insert) (table|chain|map|element|rule) (ip|ip6) docker-bridges( [A-Za-z][A-Za-z0-9_.-]{0,63})?( |$)`)

// checkNftOp checks one nftables command of a plan: Docker's table of
// the op's family, one printable line, a known command, and no second
// command hidden behind a ";" or a comment outside braces and quotes.
func checkNftOp(op diagnose.Op) string {
	fam := ""
	switch op.Family {
	case snapshot.FamilyIPv4:
		fam = "ip"
	case snapshot.FamilyIPv6:
		fam = "ip6"
	default:
		return "unknown family"
	}
	if op.Table != diagnose.NftDockerTable {
		return "an nftables command outside Docker's table " + diagnose.NftDockerTable
	}
	s := op.Spec
	if s == "" || len(s) > 4096 {
		return "empty or over-long nftables command"
	}
	for i := 0; i < len(s); i++ {
		if s[i] < ' ' || s[i] == 0x7f {
			return "nftables command with a line break or a control character"
		}
	}
	m := nftCommand.FindStringSubmatch(s)
	if m == nil {
		return "not one of the nftables commands a repair writes"
	}
	if m[3] != fam {
		return "nftables command for the other family"
	}
	if m[2] == "table" && m[4] != "" {
		return "add table with extra words"
	}
	// Outside quotes, braces must balance and ";" may only end a
	// declaration inside them (a chain's "type ... ; policy ...;" or a
	// map's "type ifname : verdict;"); "#" would start a comment.
	depth, quoted := 0, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quoted && c == '\\':
			i++
		case c == '"':
			quoted = !quoted
		case quoted:
		case c == '{':
			depth++
		case c == '}':
			depth--
			if depth < 0 {
				return "unbalanced braces in an nftables command"
			}
		case c == ';' && depth == 0:
			return "a second nftables command after \";\""
		case c == '#':
			return "a comment in an nftables command"
		}
	}
	if depth != 0 || quoted {
		return "unbalanced braces or quotes in an nftables command"
	}
	// Interface names in quotes (verdict-map keys, iifname/oifname) must
	// be names the kernel accepts.
	for _, q := range quotedWords(s) {
		if strings.HasPrefix(m[0], "add element") || strings.Contains(s, "ifname \""+q+"\"") {
			if why := snapshot.CheckIfname(q, false); why != "" {
				return why
			}
		}
	}
	return ""
}

// quotedWords returns the double-quoted strings of s (without escapes).
func quotedWords(s string) []string {
	var out []string
	for {
		i := strings.IndexByte(s, '"')
		if i < 0 {
			return out
		}
		j := strings.IndexByte(s[i+1:], '"')
		if j < 0 {
			return out
		}
		out = append(out, s[i+1:i+1+j])
		s = s[i+2+j:]
	}
}
