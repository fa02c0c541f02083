package diagnose

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/iptscope/iptscope/parse"
	"github.com/iptscope/iptscope/snapshot"
)

// lookAlike is a rule that looks like one of Docker's but is an
// administrator's: iptscope must never report it as Docker's nor touch it.
type lookAlike struct {
	name, table, chain, spec string
}

var lookAlikes = []lookAlike{
	{"an admin's chain DOCKER-ADMIN, jumped to from INPUT", "filter", "DOCKER-ADMIN", "-s 198.51.100.0/24 -j DROP"},
	{"the jump to DOCKER-ADMIN", "filter", "INPUT", "-j DOCKER-ADMIN"},
	{"a comment \"DOCKER\" in DOCKER-USER", "filter", "DOCKER-USER", "-s 203.0.113.0/24 -m comment --comment DOCKER -j ACCEPT"},
	{"an admin's DNAT in PREROUTING", "nat", "PREROUTING", "-d 198.51.100.10/32 -p tcp -m tcp --dport 8443 -j DNAT --to-destination 10.9.9.9:443"},
	{"a MASQUERADE for a subnet that is not Docker's", "nat", "POSTROUTING", "-s 10.99.0.0/16 ! -o eth9 -j MASQUERADE"},
	{"a rule naming an interface that does not exist", "filter", "FORWARD", "-i br-deadbeef0001 -o br-deadbeef0001 -j ACCEPT"},
}

// withLookAlikes is the bundle with every look-alike rule added to the
// dump the checks read.
func withLookAlikes(t *testing.T, dir string) *snapshot.Snapshot {
	t.Helper()
	s := loadBundle(t, dir)
	d, err := s.PickDump(snapshot.BackendAuto, snapshot.FamilyIPv4)
	if err != nil {
		t.Fatal(err)
	}
	for _, la := range lookAlikes {
		// Why skip: an administrator who creates DOCKER-USER after a
		// firewall reload deleted it makes a host with DOCKER-USER, whose
		// missing jump and skeleton are then rightly reported.
		if parse.ChainName(la.chain) == ChainDockerUser && d.Ruleset.Table(parse.TableFilter).Chain(ChainDockerUser) == nil {
			continue
		}
		insertRule(t, s, la.table, la.chain, la.spec, 1000)
	}
	s.ParseRules()
	return s
}

// citing returns the IDs of findings whose JSON names a look-alike rule.
func citing(t *testing.T, fs []Finding) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, f := range fs {
		data, err := json.Marshal(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, la := range lookAlikes {
			if strings.Contains(string(data), la.spec) || la.chain == "DOCKER-ADMIN" && strings.Contains(string(data), "DOCKER-ADMIN") {
				out[f.ID] = append(out[f.ID], la.name)
			}
		}
	}
	return out
}

var lookAlikeBundles = []string{
	"docker-28.5-nft-proxy-off-healthy", "docker-20.10-legacy-proxy-on-healthy",
	"docker-28.5-nft-proxy-off-nat-docker-flushed", "docker-20.10-legacy-proxy-off-firewall-reload",
	"docker-28.5-legacy-proxy-on-stale-dnat",
}

func TestRulesThatLookLikeDockersAreNeverReportedAsDockers(t *testing.T) {
	for _, dir := range lookAlikeBundles {
		t.Run(dir, func(t *testing.T) {
			plain := Run(loadBundle(t, dir), Options{})
			s := withLookAlikes(t, dir)
			got := Run(s, Options{})
			if c := citing(t, got); len(c) > 0 {
				t.Errorf("findings name the administrator's rules: %v", c)
			}
			var before, after []string
			for _, f := range plain {
				before = append(before, f.Key)
			}
			for _, f := range got {
				after = append(after, f.Key)
			}
			slices.Sort(before)
			slices.Sort(after)
			if !slices.Equal(before, after) {
				t.Errorf("the administrator's rules changed the findings:\nwithout: %v\nwith:    %v", before, after)
			}
		})
	}
}

func TestRulesThatLookLikeDockersAreNeverTouchedByTheFix(t *testing.T) {
	for _, dir := range lookAlikeBundles {
		t.Run(dir, func(t *testing.T) {
			s := withLookAlikes(t, dir)
			p := NewPlan(s, Run(s, Options{}))
			for _, op := range p.Ops {
				if op.Chain == "DOCKER-ADMIN" {
					t.Errorf("the plan touches the administrator's chain: %s", op.Line())
				}
				for _, la := range lookAlikes {
					if op.Spec == la.spec {
						t.Errorf("the plan touches %s: %s", la.name, op.Line())
					}
				}
			}
			d, err := s.PickDump(snapshot.BackendAuto, snapshot.FamilyIPv4)
			if err != nil {
				t.Fatal(err)
			}
			fixed := applyInMemory(t, d.Ruleset, p)
			for _, la := range lookAlikes {
				if !strings.Contains(d.Raw, la.spec) {
					continue // not added to this bundle
				}
				c := fixed.Table(parse.TableName(la.table)).Chain(parse.ChainName(la.chain))
				if c == nil || !slices.ContainsFunc(c.Rules, func(r *parse.Rule) bool { return r.Spec() == la.spec }) {
					t.Errorf("after the plan, %s is gone", la.name)
				}
			}
		})
	}
}
