package repair

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/iptscope/iptscope/diagnose"
	"github.com/iptscope/iptscope/parse/nft"
	"github.com/iptscope/iptscope/snapshot"
)

// nftChurnHost is a Docker 29 host with its nftables backend (the healthy
// capture) behind the fake nft, with a Docker view the test changes while
// a repair runs, and a dockerd that does what Docker 29 does when a
// container goes or comes: it writes each chain holding one of the
// container's rules again, whole, from its own model (every rule of the
// view: a chain flushed behind its back comes back full).
type nftChurnHost struct {
	t    *testing.T
	base *snapshot.Snapshot
	nft  *fakeNft
	gone map[string]bool
	// reads counts Reread calls.
	reads int
}

const nftChurnFixture = "docker-29-nftables-proxy-off-healthy"

func newNftChurnHost(t *testing.T) *nftChurnHost {
	t.Helper()
	s, _ := loadFixture(t, nftChurnFixture)
	return &nftChurnHost{t: t, base: s, nft: newFakeNft(s), gone: map[string]bool{}}
}

// snap is what a collect would read now.
func (h *nftChurnHost) snap() *snapshot.Snapshot {
	h.t.Helper()
	data, err := json.Marshal(h.base)
	if err != nil {
		h.t.Fatal(err)
	}
	s, err := snapshot.Load(data)
	if err != nil {
		h.t.Fatal(err)
	}
	h.nft.mu.Lock()
	s.Nftables = snapshot.NewNftRuleset(h.nft.ruleset(), "")
	h.nft.mu.Unlock()
	var keep []snapshot.Container
	for _, c := range s.Docker.Containers {
		if !h.gone[c.Name] {
			keep = append(keep, c)
		}
	}
	s.Docker.Containers = keep
	return s
}

func (h *nftChurnHost) plan() (*snapshot.Snapshot, *diagnose.Plan) {
	s := h.snap()
	return s, diagnose.NewPlan(s, diagnose.Run(s, diagnose.Options{}))
}

func (h *nftChurnHost) options(planned *snapshot.Snapshot) Options {
	o := testOptions(h.t, h.nft)
	o.Planned = planned
	o.Reread = func(context.Context) (*snapshot.Snapshot, []diagnose.Finding, error) {
		h.reads++
		s := h.snap()
		return s, diagnose.Run(s, diagnose.Options{}), nil
	}
	return o
}

// model is Docker's own rules of a chain for the view without gone.
func (h *nftChurnHost) model(gone map[string]bool, fam nft.Family, chain string) []string {
	saved := h.gone
	h.gone = gone
	s := h.snap()
	h.gone = saved
	var out []string
	for _, r := range diagnose.ExpectNft(s, nftSnapFamily(fam)).RulesOf(chain) {
		out = append(out, r.Spec)
	}
	return out
}

// dockerChanges is dockerd removing (or, with back, starting again) a
// container: every chain whose model changes is written again whole.
// Call it from a before hook.
func (h *nftChurnHost) dockerChanges(name string, back bool) {
	next := map[string]bool{}
	for k, v := range h.gone {
		next[k] = v
	}
	if back {
		delete(next, name)
	} else {
		next[name] = true
	}
	for _, fam := range []nft.Family{nft.FamilyIP, nft.FamilyIP6} {
		h.nft.mu.Lock()
		t := h.nft.fams[fam]
		var chains []string
		if t != nil {
			for _, c := range t.chains {
				chains = append(chains, c.name)
			}
		}
		h.nft.mu.Unlock()
		for _, c := range chains {
			if was, now := h.model(h.gone, fam, c), h.model(next, fam, c); !slices.Equal(was, now) {
				h.nft.rewrite(fam, c, now)
			}
		}
	}
	h.gone = next
}

// requireNoDuplicate fails for a rule that is twice in its chain.
func (h *nftChurnHost) requireNoDuplicate() {
	h.t.Helper()
	for fam, t := range h.nft.fams {
		for _, c := range t.chains {
			seen := map[string]bool{}
			for _, r := range c.rules {
				if seen[r.spec] {
					h.t.Errorf("twice in %s %s: %s", fam, c.name, r.spec)
				}
				seen[r.spec] = true
			}
		}
	}
}

// requireClean fails for an error finding on the host as it is now.
func (h *nftChurnHost) requireClean() {
	h.t.Helper()
	if f := errorsOf(diagnose.Run(h.snap(), diagnose.Options{})); len(f) > 0 {
		h.t.Errorf("findings after the repair: %v", f)
	}
}

// rulesNaming lists the rules that name addr.
func (h *nftChurnHost) rulesNaming(addr string) []string {
	var out []string
	for fam, t := range h.nft.fams {
		for _, c := range t.chains {
			for _, r := range c.rules {
				if strings.Contains(r.spec, addr+" ") || strings.Contains(r.spec, addr+":") {
					out = append(out, string(fam)+" "+c.name+": "+r.spec)
				}
			}
		}
	}
	return out
}

func isNftApply(args []string) bool {
	return slices.Equal(args, []string{"--echo", "--handle", "-f", "-"})
}
func isLiveRead(args []string) bool {
	return len(args) == 5 && args[0] == "-j" && args[1] == "list" && args[2] == "table"
}

const dnatChain = diagnose.NftNATPreAndOutput

func TestNftFixOfAFlushedNatChainWritesWhatIsMissingAndHolds(t *testing.T) {
	h := newNftChurnHost(t)
	healthy := h.nft.specs(nft.FamilyIP, dnatChain)
	h.nft.flush(nft.FamilyIP, dnatChain)
	s, p := h.plan()
	res, err := Apply(context.Background(), p, h.options(s))
	if err != nil {
		t.Fatal(err)
	}
	// Why sorted: Docker orders its DNATs by container start, which the
	// snapshot does not say; they match disjoint packets.
	if got := h.nft.specs(nft.FamilyIP, dnatChain); !slices.Equal(slices.Sorted(slices.Values(got)), slices.Sorted(slices.Values(healthy))) {
		t.Errorf("nat chain after the fix:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(healthy, "\n  "))
	}
	if res.Replans != 0 || len(res.Undone) != 0 || len(res.Skipped) != 0 {
		t.Errorf("replans %d, undone %d, skipped %d: want none on a quiet host", res.Replans, len(res.Undone), len(res.Skipped))
	}
	h.requireClean()
}

func TestNftDNATAddedForAContainerRemovedMeanwhileIsDeletedByItsHandle(t *testing.T) {
	h := newNftChurnHost(t)
	h.nft.flush(nft.FamilyIP, dnatChain)
	s, p := h.plan()
	// Docker removes web after the repair read the chain and before it
	// wrote: dockerd writes the chain again from its model (the five
	// other DNATs), and the repair's transaction, into what was an empty
	// chain, adds all six again.
	var dockers []int
	h.nft.before = func(f *fakeNft, args []string, _ string) {
		if isNftApply(args) && !h.gone["web"] {
			h.dockerChanges("web", false)
			for _, r := range f.fams[nft.FamilyIP].chain(dnatChain).rules {
				dockers = append(dockers, r.handle)
			}
		}
	}
	res, err := Apply(context.Background(), p, h.options(s))
	if err != nil {
		t.Fatal(err)
	}
	if left := h.rulesNaming("172.17.0.2"); len(left) > 0 {
		t.Errorf("rules name the removed container web:\n%s", strings.Join(left, "\n"))
	}
	if len(res.Undone) != 6 || !slices.ContainsFunc(res.Undone, func(op diagnose.Op) bool { return strings.Contains(op.Spec, "172.17.0.2:80") }) {
		t.Errorf("undone %d operation(s) %v, want web's DNAT and the five copies Docker wrote too", len(res.Undone), res.Undone)
	}
	var kept []int
	for _, r := range h.nft.fams[nft.FamilyIP].chain(dnatChain).rules {
		kept = append(kept, r.handle)
	}
	if !slices.Equal(kept, dockers) {
		t.Errorf("handles in the nat chain %v, want Docker's own %v untouched", kept, dockers)
	}
	h.requireNoDuplicate()
	h.requireClean()
}

func TestNftPlanWhoseChainsDockerRewroteIsPlannedAgain(t *testing.T) {
	h := newNftChurnHost(t)
	h.nft.flush(nft.FamilyIP, dnatChain)
	h.nft.deleteElement(nft.FamilyIP, diagnose.NftMapFwdIn, "docker0")
	s, p := h.plan()
	// Docker removes app before the repair's read of the touched chains:
	// the nat chain is written again (the break is healed for what
	// Docker models), the element is still gone.
	h.nft.before = func(f *fakeNft, args []string, _ string) {
		if isLiveRead(args) && !h.gone["app"] {
			h.dockerChanges("app", false)
		}
	}
	res, err := Apply(context.Background(), p, h.options(s))
	if err != nil {
		t.Fatal(err)
	}
	if res.Replans != 1 {
		t.Errorf("replans %d, want 1", res.Replans)
	}
	if els := h.nft.elements(nft.FamilyIP, diagnose.NftMapFwdIn); !slices.Contains(els, "docker0 : filter-forward-in__docker0") {
		t.Errorf("the element was not put back: %v", els)
	}
	if left := h.rulesNaming("172.18.0.2"); len(left) > 0 {
		t.Errorf("rules name the removed container app:\n%s", strings.Join(left, "\n"))
	}
	for _, pl := range res.Payloads {
		if strings.Contains(pl.Text, "dnat to") {
			t.Errorf("a DNAT written after Docker wrote the chain again:\n%s", pl.Text)
		}
	}
	h.requireNoDuplicate()
	h.requireClean()
}

func TestNftDockerChangingUnderEveryPlanGivesUpWithoutWriting(t *testing.T) {
	h := newNftChurnHost(t)
	h.nft.deleteElement(nft.FamilyIP, diagnose.NftMapFwdIn, "docker0")
	s, p := h.plan()
	// Before every read of the touched map, Docker adds or removes a
	// network's element in it (a stand-in for networks coming and going).
	on := true
	h.nft.before = func(f *fakeNft, args []string, _ string) {
		if !isLiveRead(args) {
			return
		}
		if on {
			f.deleteElement(nft.FamilyIP, diagnose.NftMapFwdIn, "br-f064e44edd15")
		} else {
			f.mu.Lock()
			m := f.fams[nft.FamilyIP].mapNamed(diagnose.NftMapFwdIn)
			m.els = append(m.els, [2]string{"br-f064e44edd15", "filter-forward-in__br-f064e44edd15"})
			f.mu.Unlock()
		}
		on = !on
	}
	_, err := Apply(context.Background(), p, h.options(s))
	if !errors.Is(err, ErrChurn) || !strings.Contains(err.Error(), "changed under 4 plan(s) in a row") {
		t.Fatalf("err %v, want ErrChurn after 4 plans", err)
	}
	if h.reads != DefaultMaxReplans {
		t.Errorf("%d re-reads, want %d", h.reads, DefaultMaxReplans)
	}
	for _, c := range h.nft.calls {
		if strings.Contains(c, "--echo") || c == "nft -f -" {
			t.Errorf("written although every plan was overtaken: %s", c)
		}
	}
}

func TestNftRuleDockerWroteBetweenTheReadAndTheWriteIsNotDuplicated(t *testing.T) {
	for _, tc := range []struct {
		name string
		spec string // the DNAT deleted by the break
		// same: Docker writes the chain again as it was (new handles,
		// the DNAT still missing) instead of from its full model.
		same bool
	}{
		{"inserted before the next rule", "tcp dport 8080 counter dnat to 172.17.0.2:80 comment \"DNAT\"", false},
		{"appended after the chain's last rule", "tcp dport 8081 counter dnat to 172.18.0.2:80 comment \"DNAT\"", false},
		{"appended after a chain written again unchanged", "tcp dport 8081 counter dnat to 172.18.0.2:80 comment \"DNAT\"", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newNftChurnHost(t)
			healthy := h.nft.specs(nft.FamilyIP, dnatChain)
			if !slices.Contains(healthy, tc.spec) {
				t.Fatalf("no %s in the fixture", tc.spec)
			}
			broken := slices.DeleteFunc(slices.Clone(healthy), func(s string) bool { return s == tc.spec })
			h.nft.rewrite(nft.FamilyIP, dnatChain, broken)
			s, p := h.plan()
			// Right before the repair's write, Docker writes the chain
			// again from its model (a container of another network
			// came and went), which has the deleted DNAT.
			wrote := false
			h.nft.before = func(f *fakeNft, args []string, _ string) {
				if isNftApply(args) && !wrote {
					wrote = true
					if tc.same {
						f.rewrite(nft.FamilyIP, dnatChain, broken)
					} else {
						f.rewrite(nft.FamilyIP, dnatChain, healthy)
					}
				}
			}
			res, err := Apply(context.Background(), p, h.options(s))
			if err != nil {
				t.Fatal(err)
			}
			if res.Replans != 1 || len(res.Undone) != 0 {
				t.Errorf("replans %d, undone %d: want the refused transaction planned again, nothing to undo", res.Replans, len(res.Undone))
			}
			// Sorted: the order among DNATs is not meaningful.
			if got := h.nft.specs(nft.FamilyIP, dnatChain); !slices.Equal(slices.Sorted(slices.Values(got)), slices.Sorted(slices.Values(healthy))) {
				t.Errorf("nat chain:\n  %s\nwant Docker's:\n  %s", strings.Join(got, "\n  "), strings.Join(healthy, "\n  "))
			}
			h.requireNoDuplicate()
		})
	}
}

func TestNftRollbackDeletesTheRepairsRulesByHandleAndKeepsDockers(t *testing.T) {
	h := newNftChurnHost(t)
	h.nft.flush(nft.FamilyIP, dnatChain)
	h.nft.deleteElement(nft.FamilyIP, diagnose.NftMapFwdIn, "docker0")
	before := h.nft.clone()
	s, p := h.plan()
	o := testOptions(t, h.nft)
	o.Planned = s
	o.Recheck = func(context.Context) ([]diagnose.Finding, error) {
		return diagnose.Run(s, diagnose.Options{}), nil // as if nothing was repaired
	}
	_, err := Apply(context.Background(), p, o)
	if err == nil || !strings.Contains(err.Error(), "rolled back: the repair's own additions were deleted again") {
		t.Fatalf("err %v, want a rollback", err)
	}
	if got, want := string(h.nft.json(nft.FamilyIP)), string(before.json(nft.FamilyIP)); got != want {
		t.Errorf("table after the rollback:\n%s\nwant as before (same handles):\n%s", got, want)
	}
	for _, c := range h.nft.calls {
		if strings.Contains(c, "delete table") {
			t.Errorf("the rollback deleted Docker's table: %s", c)
		}
	}
}

func TestNftRollbackOfARebuiltTableDeletesWhatTheRepairCreated(t *testing.T) {
	h := newNftChurnHost(t)
	h.nft.fams[nft.FamilyIP] = nil
	delete(h.nft.fams, nft.FamilyIP)
	s, p := h.plan()
	o := testOptions(t, h.nft)
	o.Planned = s
	o.Recheck = func(context.Context) ([]diagnose.Finding, error) { return diagnose.Run(s, diagnose.Options{}), nil }
	if _, err := Apply(context.Background(), p, o); err == nil || !strings.Contains(err.Error(), "rolled back") {
		t.Fatalf("err %v, want a rollback", err)
	}
	if h.nft.fams[nft.FamilyIP] != nil {
		t.Errorf("the table the repair rebuilt is still there:\n%s", h.nft.text(nft.FamilyIP))
	}
}

func TestNftContainerStartedRightAfterTheRepairIsJudgedAgainstTheFreshView(t *testing.T) {
	h := newNftChurnHost(t)
	// app is not running when the plan is made; the nat chain is flushed.
	h.gone["app"] = true
	h.nft.flush(nft.FamilyIP, dnatChain)
	s, p := h.plan()
	if strings.Contains(strings.Join(lines(p), "\n"), "172.18.0.2") {
		t.Fatalf("the plan names app before it started")
	}
	// Docker starts app right after the repair's write: it writes every
	// chain with one of app's rules again from its model, the nat chain
	// among them (the repair's DNATs give way to Docker's).
	o := h.options(s)
	reads := 0
	o.Reread = func(context.Context) (*snapshot.Snapshot, []diagnose.Finding, error) {
		if reads++; reads == 1 {
			h.dockerChanges("app", true)
		}
		s := h.snap()
		return s, diagnose.Run(s, diagnose.Options{}), nil
	}
	res, err := Apply(context.Background(), p, o)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Undone) != 0 || res.Replans != 0 {
		t.Errorf("undone %v, replans %d: want nothing (Docker's rewrite holds what the fresh view wants)", res.Undone, res.Replans)
	}
	if !slices.ContainsFunc(h.nft.specs(nft.FamilyIP, dnatChain), func(s string) bool { return strings.Contains(s, "172.18.0.2:80") }) {
		t.Errorf("app's DNAT is not there: %v", h.nft.specs(nft.FamilyIP, dnatChain))
	}
	h.requireNoDuplicate()
	h.requireClean()
}
