//go:build linux

package collect

import (
	"errors"
	"slices"
	"testing"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"

	"github.com/iptscope/iptscope/watch"
)

func TestScopeOfAGeneration(t *testing.T) {
	ip := &nftables.Table{Name: "nat", Family: nftables.TableFamilyIPv4}
	filter6 := &nftables.Table{Name: "filter", Family: nftables.TableFamilyIPv6}
	native := &nftables.Table{Name: "docker-bridges", Family: nftables.TableFamilyIPv4}
	inet := &nftables.Table{Name: "filter", Family: nftables.TableFamilyINet}
	rule := func(typ nftables.MonitorEventType, t *nftables.Table, chain string) *nftables.MonitorEvent {
		return &nftables.MonitorEvent{Type: typ, Data: &nftables.Rule{Table: t, Chain: &nftables.Chain{Name: chain}}}
	}
	chain := func(typ nftables.MonitorEventType, t *nftables.Table, name string) *nftables.MonitorEvent {
		return &nftables.MonitorEvent{Type: typ, Data: &nftables.Chain{Table: t, Name: name}}
	}
	del, add := nftables.MonitorEventTypeDelRule, nftables.MonitorEventTypeNewRule
	natDocker := watch.ChainRef{Family: "ipv4", Table: "nat", Chain: "DOCKER"}
	tests := []struct {
		name      string
		evs       []*nftables.MonitorEvent
		rulesOnly bool
		chains    []watch.ChainRef
	}{
		{"a flush of nat DOCKER is that chain", []*nftables.MonitorEvent{rule(del, ip, "DOCKER"), rule(del, ip, "DOCKER")}, true, []watch.ChainRef{natDocker}},
		{"a replace (delete and add) in two chains of two families is both", []*nftables.MonitorEvent{rule(del, ip, "DOCKER"), rule(add, filter6, "FORWARD")},
			true, []watch.ChainRef{natDocker, {Family: "ipv6", Table: "filter", Chain: "FORWARD"}}},
		{"a rule whose expressions did not decode still names its chain", []*nftables.MonitorEvent{{Type: add, Data: &nftables.Rule{Table: ip, Chain: &nftables.Chain{Name: "DOCKER"}}, Error: errors.New("bad expr")}}, true, []watch.ChainRef{natDocker}},
		{"a policy or counters change of a built-in chain is that chain", []*nftables.MonitorEvent{chain(nftables.MonitorEventTypeNewChain, filter6, "FORWARD")}, true, []watch.ChainRef{{Family: "ipv6", Table: "filter", Chain: "FORWARD"}}},
		{"a user chain added is a full read", []*nftables.MonitorEvent{chain(nftables.MonitorEventTypeNewChain, ip, "DOCKER-NEW"), rule(add, ip, "DOCKER-NEW")}, false, nil},
		{"a built-in chain deleted is a full read", []*nftables.MonitorEvent{chain(nftables.MonitorEventTypeDelChain, ip, "OUTPUT")}, false, nil},
		{"a table added is a full read", []*nftables.MonitorEvent{{Type: nftables.MonitorEventTypeNewTable, Data: ip}}, false, nil},
		{"a native table's rule is a full read", []*nftables.MonitorEvent{rule(del, native, "nat-prerouting-and-output")}, false, nil},
		{"an inet table's rule is a full read", []*nftables.MonitorEvent{rule(del, inet, "forward")}, false, nil},
		{"the security table is a full read", []*nftables.MonitorEvent{rule(del, &nftables.Table{Name: "security", Family: nftables.TableFamilyIPv4}, "INPUT")}, false, nil},
		{"a set element is a full read", []*nftables.MonitorEvent{rule(del, ip, "DOCKER"), {Type: nftables.MonitorEventTypeDelSetElem, Data: []nftables.SetElement{}}}, false, nil},
		{"a rule without its chain is a full read", []*nftables.MonitorEvent{{Type: del, Data: &nftables.Rule{Table: ip}}}, false, nil},
		{"a generation with no change the library decoded is a full read", nil, false, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rulesOnly, chains := scopeOf(tt.evs)
			if rulesOnly != tt.rulesOnly || !slices.Equal(chains, tt.chains) {
				t.Errorf("scopeOf = %v %v, want %v %v", rulesOnly, chains, tt.rulesOnly, tt.chains)
			}
		})
	}
}

func TestDescribeChanges(t *testing.T) {
	ip := &nftables.Table{Name: "docker-bridges", Family: nftables.TableFamilyIPv4}
	key := append([]byte("docker0"), make([]byte, 9)...)
	evs := []*nftables.MonitorEvent{
		{Type: nftables.MonitorEventTypeNewRule, Data: &nftables.Rule{Table: ip, Chain: &nftables.Chain{Name: "nat-prerouting-and-output"}}},
		{Type: nftables.MonitorEventTypeDelRule, Data: &nftables.Rule{Table: ip, Chain: &nftables.Chain{Name: "nat-prerouting-and-output"}}},
		{Type: nftables.MonitorEventTypeDelRule, Data: &nftables.Rule{Table: ip, Chain: &nftables.Chain{Name: "nat-prerouting-and-output"}}},
		{Type: nftables.MonitorEventTypeDelSetElem, Data: []nftables.SetElement{{Key: key, VerdictData: &expr.Verdict{Kind: expr.VerdictJump, Chain: "filter-forward-in__docker0"}}}},
		{Type: nftables.MonitorEventTypeNewSetElem, Data: []nftables.SetElement{{Key: []byte{10, 0, 0, 1}}}},
		{Type: nftables.MonitorEventTypeNewSet, Data: &nftables.Set{Table: ip, Name: "ports"}},
		{Type: nftables.MonitorEventTypeDelChain, Data: &nftables.Chain{Table: ip, Name: "filter-forward-in__br0"}},
	}
	want := []string{
		"ip docker-bridges nat-prerouting-and-output: 2 rules deleted",
		`element "docker0" : jump filter-forward-in__docker0 deleted`,
		"ip docker-bridges filter-forward-in__br0: chain deleted",
		"ip docker-bridges nat-prerouting-and-output: 1 rule added",
		"element 0a000001 added",
		"ip docker-bridges ports: set added",
	}
	if got := describeChanges(evs); !slices.Equal(got, want) {
		t.Errorf("describeChanges =\n%q\nwant\n%q", got, want)
	}
}
