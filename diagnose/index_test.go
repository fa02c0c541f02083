package diagnose

import (
	"hash/maphash"
	"slices"
	"testing"

	"github.com/iptscope/iptscope/internal/synth"
	"github.com/iptscope/iptscope/parse"
	"github.com/iptscope/iptscope/snapshot"
)

// TestBindingIndexFindsWhatAScanFinds: a binding's DNATs (dnatsOf) and
// filter ACCEPTs (a bindingIndex of them) are the rules a scan of every
// expected rule finds, in order, on every fixture and a synthetic host,
// also when every binding's hash collides with others.
func TestBindingIndexFindsWhatAScanFinds(t *testing.T) {
	snaps := map[string]*snapshot.Snapshot{"synthetic 300 ports": synth.DockerSnapshot(300, synth.DockerHost(300), "nft")}
	for _, b := range bundles(t) {
		snaps[b.dir] = b.snap
	}
	hashes := map[string]func(maphash.Seed, acceptKey) uint64{
		"maphash":                   bindingHash,
		"three hashes for all keys": func(_ maphash.Seed, k acceptKey) uint64 { return uint64(k.port.HostPort % 3) },
	}
	for hn, h := range hashes {
		t.Run("with "+hn, func(t *testing.T) {
			defer func(old func(maphash.Seed, acceptKey) uint64) { bindingHash = old }(bindingHash)
			bindingHash = h
			found := 0
			for name, s := range snaps {
				env := &Env{S: s}
				a, ok := env.v4()
				if !ok {
					continue
				}
				scan := func(rules []ExpectedRule, want func(*ExpectedRule) bool, k acceptKey) []int {
					var out []int
					for i := range rules {
						if er := &rules[i]; er.Port != nil && want(er) && bindingOf(er) == k {
							out = append(out, i)
						}
					}
					return out
				}
				nat := a.exp.RulesOf(parse.TableNAT, ChainDocker)
				all := a.exp.All()
				isAccept := func(er *ExpectedRule) bool { return er.Table == parse.TableFilter && er.Kind == KindPortAccept }
				accepts := buildBindingIndex(all, isAccept)
				for _, c := range s.Docker.Containers {
					for _, pb := range slices.Concat(c.Ports, []snapshot.PortBinding{{HostPort: 1, Proto: "tcp"}}) {
						k := acceptKey{c.Name, pb}
						var got []int
						for _, er := range a.dnatsOf(c.Name, pb) {
							got = append(got, slices.IndexFunc(nat, func(x ExpectedRule) bool { return x.id == er.id }))
						}
						found += len(got)
						if want := scan(nat, func(er *ExpectedRule) bool { return er.Kind == KindDNAT }, k); !slices.Equal(got, want) {
							t.Errorf("%s: %s %+v: DNATs at %v, a scan finds %v", name, c.Name, pb, got, want)
						}
						got = nil
						accepts.each(accepts.of(all, k), func(i int) { got = append(got, i) })
						if want := scan(all, isAccept, k); !slices.Equal(got, want) {
							t.Errorf("%s: %s %+v: ACCEPTs at %v, a scan finds %v", name, c.Name, pb, got, want)
						}
					}
				}
			}
			if found < 300 {
				t.Errorf("%d DNATs found in all: the test looked at nothing", found)
			}
		})
	}
}
