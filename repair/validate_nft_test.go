package repair

import (
	"strings"
	"testing"

	"github.com/iptscope/iptscope/diagnose"
	"github.com/iptscope/iptscope/snapshot"
)

// TestNftOpsAreOnlyDockersCommands: an nftables command of a plan must be
// one add/insert on Docker's own table of the op's family; a second
// command, a comment, another table or a bad interface name is refused.
func TestNftOpsAreOnlyDockersCommands(t *testing.T) {
	op := func(fam, spec string) diagnose.Op {
		return diagnose.Op{Kind: diagnose.OpNft, Family: fam, Table: diagnose.NftDockerTable, Spec: spec}
	}
	v4, v6 := snapshot.FamilyIPv4, snapshot.FamilyIPv6
	for _, tc := range []struct {
		op   diagnose.Op
		want string // "" = accepted, else a word of the reason
	}{
		{op(v4, "add table ip docker-bridges"), ""},
		{op(v4, `add map ip docker-bridges filter-forward-in-jumps { type ifname : verdict; }`), ""},
		{op(v4, `add element ip docker-bridges filter-forward-in-jumps { "docker0" : jump filter-forward-in__docker0 }`), ""},
		{op(v4, `add chain ip docker-bridges nat-PREROUTING { type nat hook prerouting priority dstnat; policy accept; }`), ""},
		{op(v4, `add rule ip docker-bridges nat-prerouting-and-output iifname != "docker0" tcp dport 8080 counter dnat to 172.17.0.2:80 comment "DNAT"`), ""},
		{op(v6, `insert rule ip6 docker-bridges filter-forward-in__docker0 position 7 ip6 daddr fd00::2 tcp dport 80 counter accept`), ""},
		{op(v4, "add table ip6 docker-bridges"), "other family"},
		{op(v4, "add table ip myfw"), "not one of"},
		{op(v4, "delete table ip docker-bridges"), "not one of"},
		{op(v4, "add rule ip docker-bridges x accept; delete table inet myfw"), "second"},
		{op(v4, "add rule ip docker-bridges x accept # hidden"), "comment"},
		{op(v4, "add rule ip docker-bridges x accept\nflush ruleset"), "line break"},
		{op(v4, `add element ip docker-bridges filter-forward-in-jumps { "eth0 ; flush ruleset" : jump x }`), "interface"},
		{op(v4, `add rule ip docker-bridges x { accept`), "unbalanced"},
		{diagnose.Op{Kind: diagnose.OpNft, Family: v4, Table: "filter", Spec: "add table ip docker-bridges"}, "outside Docker's table"},
	} {
		got := checkNftOp(tc.op)
		if tc.want == "" && got != "" || tc.want != "" && !strings.Contains(got, tc.want) {
			t.Errorf("%q: %q, want %q", tc.op.Spec, got, tc.want)
		}
	}
}
