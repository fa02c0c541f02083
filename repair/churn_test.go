package repair

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/iptscope/iptscope/diagnose"
	"github.com/iptscope/iptscope/snapshot"
)

// churnHost is a fixture host behind a stateful fake firewall, with a
// Docker view the test changes while a repair runs, as Docker would.
type churnHost struct {
	t    *testing.T
	base *snapshot.Snapshot // the fixture, as collected
	fw   *fakeFW
	// gone are the containers removed from Docker's view so far.
	gone map[string]bool
	// reads counts Reread calls.
	reads int
}

const churnFixture = "docker-28.5-nft-proxy-off-nat-docker-flushed"

func newChurnHost(t *testing.T, fixture string) *churnHost {
	t.Helper()
	s, _ := loadFixture(t, fixture)
	fw := newFakeFW(nil)
	fw.loadSnapshot(s, s.DockerBackend)
	return &churnHost{t: t, base: s, fw: fw, gone: map[string]bool{}}
}

// snap is what a collect would read now: the fake's rules and Docker's
// view without the removed containers.
func (h *churnHost) snap() *snapshot.Snapshot {
	h.t.Helper()
	data, err := json.Marshal(h.base)
	if err != nil {
		h.t.Fatal(err)
	}
	s, err := snapshot.Load(data)
	if err != nil {
		h.t.Fatal(err)
	}
	for i := range s.Rules {
		d := &s.Rules[i]
		if d.Backend != s.DockerBackend {
			continue
		}
		out, err := h.fw.Run(context.Background(), saveName(d.Family, d.Backend), nil, nil)
		if err != nil {
			h.t.Fatal(err)
		}
		d.Raw = string(out)
	}
	h.fw.calls = nil
	s.ParseRules()
	var keep []snapshot.Container
	for _, c := range s.Docker.Containers {
		if !h.gone[c.Name] {
			keep = append(keep, c)
		}
	}
	s.Docker.Containers = keep
	return s
}

func saveName(family, backend string) string {
	if family == snapshot.FamilyIPv6 {
		return "ip6tables-" + backend + "-save"
	}
	return "iptables-" + backend + "-save"
}

func (h *churnHost) plan() (*snapshot.Snapshot, *diagnose.Plan) {
	s := h.snap()
	return s, diagnose.NewPlan(s, diagnose.Run(s, diagnose.Options{}))
}

func (h *churnHost) options() Options {
	o := testOptions(h.t, h.fw)
	o.Reread = func(context.Context) (*snapshot.Snapshot, []diagnose.Finding, error) {
		h.reads++
		s := h.snap()
		return s, diagnose.Run(s, diagnose.Options{}), nil
	}
	return o
}

// dockerRules are the rules Docker writes for one container (from its
// expected rules in the fixture's full view), as "family table chain spec".
func (h *churnHost) dockerRules(name string) [][4]string {
	var out [][4]string
	for _, fam := range []string{snapshot.FamilyIPv4, snapshot.FamilyIPv6} {
		e, err := diagnose.Expect(h.base, fam)
		if err != nil || !e.Modelled {
			continue
		}
		for t, chains := range e.Rules {
			for c := range chains {
				for _, er := range e.RulesOf(t, c) {
					if er.Container == name {
						out = append(out, [4]string{fam, string(t), string(c), er.Spec()})
					}
				}
			}
		}
	}
	return out
}

// removeContainer is what dockerd does on `docker rm -f NAME`: it deletes
// the container's rules that are there (-D of each; a flushed chain has
// none to delete) and the container leaves its view.
func (h *churnHost) removeContainer(name string) {
	for _, r := range h.dockerRules(name) {
		_ = h.fw.do(r[0], r[1], "-D "+r[2]+" "+r[3])
	}
	h.gone[name] = true
}

// nameless reports the rules of the fake that name the address of a
// removed container.
func (h *churnHost) rulesNaming(ip string) []string {
	var out []string
	for k := range h.fw.tables {
		for _, l := range strings.Split(h.fw.save(k), "\n") {
			if strings.Contains(l, ip+"/") || strings.Contains(l, ip+":") {
				out = append(out, k+": "+l)
			}
		}
	}
	return out
}

func TestAStaleRuleAddedForAContainerRemovedMeanwhileIsUndone(t *testing.T) {
	h := newChurnHost(t, churnFixture)
	s, p := h.plan()
	o := h.options()
	o.Planned = s
	// Docker removes web after the plan was made, right before the
	// repair's restore: its -D finds nothing in the flushed nat DOCKER,
	// and the DNAT the repair adds for web is stale at once.
	h.fw.before = func(f *fakeFW, name string, args []string) {
		if strings.HasSuffix(name, "-save") && len(args) == 2 && !h.gone["web"] {
			h.removeContainer("web")
		}
	}
	res, err := Apply(context.Background(), p, o)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Undone) != 1 || !strings.Contains(res.Undone[0].Spec, "172.17.0.2:80") {
		t.Errorf("undone %+v, want web's DNAT alone", res.Undone)
	}
	if left := h.rulesNaming("172.17.0.2"); len(left) > 0 {
		t.Errorf("rules name the removed container web:\n%s", strings.Join(left, "\n"))
	}
	dnats := h.fw.chain("ipv4 nat", "DOCKER")
	for _, want := range []string{"172.18.0.2:80", "172.17.0.3:7000", "172.17.0.3:80"} {
		if !slices.ContainsFunc(dnats, func(s string) bool { return strings.Contains(s, want) }) {
			t.Errorf("nat DOCKER lost the DNAT to %s of a running container:\n%s", want, strings.Join(dnats, "\n"))
		}
	}
	after := h.snap()
	if f := diagnose.Run(after, diagnose.Options{}); len(errorsOf(f)) > 0 {
		t.Errorf("findings after the repair: %v", errorsOf(f))
	}
}

func errorsOf(fs []diagnose.Finding) []string {
	var out []string
	for _, f := range fs {
		if f.Severity == diagnose.SeverityError {
			out = append(out, f.Key)
		}
	}
	return out
}

func TestARuleDockerWroteAtTheSameTimeIsNotLeftTwice(t *testing.T) {
	h := newChurnHost(t, churnFixture)
	s, p := h.plan()
	o := h.options()
	o.Planned = s
	var webDNAT [4]string
	for _, r := range h.dockerRules("web") {
		if r[1] == "nat" && r[2] == "DOCKER" {
			webDNAT = r
		}
	}
	// Docker writes web's DNAT too, right after the repair's restore
	// (both checked before either wrote).
	applied := false
	h.fw.before = func(f *fakeFW, name string, args []string) {
		if strings.HasSuffix(name, "-save") && len(args) == 0 && !applied {
			applied = true
			if err := f.do(webDNAT[0], webDNAT[1], "-A "+webDNAT[2]+" "+webDNAT[3]); err != nil {
				t.Fatal(err)
			}
		}
	}
	res, err := Apply(context.Background(), p, o)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, r := range h.fw.chain("ipv4 nat", "DOCKER") {
		if r == webDNAT[3] {
			n++
		}
	}
	if n != 1 {
		t.Errorf("web's DNAT is %d times in nat DOCKER, want once", n)
	}
	if len(res.Undone) != 1 {
		t.Errorf("undone %+v, want the repair's copy of web's DNAT", res.Undone)
	}
}

func TestAPlanWhoseChainsChangedBeforeTheRestoreIsPlannedAgain(t *testing.T) {
	h := newChurnHost(t, churnFixture)
	// app is "started" during the repair: first not in the view, then
	// Docker writes its rules right before the repair's backup read.
	h.gone["app"] = true
	for _, r := range h.dockerRules("app") {
		_ = h.fw.do(r[0], r[1], "-D "+r[2]+" "+r[3])
	}
	s, p := h.plan()
	if strings.Contains(strings.Join(lines(p), "\n"), "172.18.0.2") {
		t.Fatalf("the plan names app before it started")
	}
	o := h.options()
	o.Planned = s
	started := false
	h.fw.before = func(f *fakeFW, name string, args []string) {
		if strings.HasSuffix(name, "-save") && len(args) == 2 && !started {
			started = true
			delete(h.gone, "app")
			for _, r := range h.dockerRules("app") {
				_ = f.do(r[0], r[1], "-A "+r[2]+" "+r[3])
			}
		}
	}
	res, err := Apply(context.Background(), p, o)
	if err != nil {
		t.Fatal(err)
	}
	if res.Replans != 1 {
		t.Errorf("replans %d, want 1", res.Replans)
	}
	seen := map[string]int{}
	for _, r := range h.fw.chain("ipv4 nat", "DOCKER") {
		seen[r]++
		if seen[r] > 1 {
			t.Errorf("twice in nat DOCKER: %s", r)
		}
	}
	if f := errorsOf(diagnose.Run(h.snap(), diagnose.Options{})); len(f) > 0 {
		t.Errorf("findings after the repair: %v", f)
	}
}

func TestDockerChangingUnderEveryPlanGivesUpWithoutChangingAnything(t *testing.T) {
	h := newChurnHost(t, churnFixture)
	s, p := h.plan()
	before := h.fw.save("ipv4 nat")
	o := h.options()
	o.Planned = s
	// Before every backup read, Docker writes one more rule into nat
	// DOCKER (a stand-in for containers starting all the time).
	n := 0
	h.fw.before = func(f *fakeFW, name string, args []string) {
		if strings.HasSuffix(name, "-save") && len(args) == 2 {
			n++
			_ = f.do("ipv4", "nat", "-A DOCKER -d 198.51.100."+string(rune('0'+n))+"/32 -j RETURN")
		}
	}
	_, err := Apply(context.Background(), p, o)
	if !errors.Is(err, ErrChurn) {
		t.Fatalf("err %v, want ErrChurn", err)
	}
	got := h.fw.chain("ipv4 nat", "DOCKER")
	if len(got) != n {
		t.Errorf("nat DOCKER holds %d rules, want Docker's %d alone (before: %s)", len(got), n, before)
	}
	if h.reads != DefaultMaxReplans {
		t.Errorf("%d re-reads, want %d", h.reads, DefaultMaxReplans)
	}
}

func TestARollbackUndoesTheRepairsOperationsAndKeepsDockersConcurrentRules(t *testing.T) {
	h := newChurnHost(t, "docker-20.10-nft-proxy-off-nat-docker-flushed")
	s, p := h.plan()
	o := testOptions(t, h.fw)
	o.Planned = s
	dockers := "-d 198.51.100.7/32 ! -i docker0 -p tcp -m tcp --dport 9999 -j DNAT --to-destination 172.17.0.9:80"
	h.fw.before = func(f *fakeFW, name string, args []string) {
		if strings.HasSuffix(name, "-restore") && !slices.Contains(args, "--test") && strings.Contains(strings.Join(f.calls, ","), "--noflush") {
			// After the repair's restore: Docker writes a rule.
			if !slices.Contains(f.tables["ipv4 nat"].chains["DOCKER"], dockers) {
				_ = f.tables["ipv4 nat"].apply("-A DOCKER "+dockers, true)
			}
		}
	}
	o.Recheck = func(context.Context) ([]diagnose.Finding, error) {
		return diagnose.Run(s, diagnose.Options{}), nil // as if nothing was repaired
	}
	_, err := Apply(context.Background(), p, o)
	if err == nil || !strings.Contains(err.Error(), "rolled back") {
		t.Fatalf("err %v, want a rollback", err)
	}
	got := h.fw.chain("ipv4 nat", "DOCKER")
	if !slices.Equal(got, []string{dockers}) {
		t.Errorf("nat DOCKER after the rollback:\n%s\nwant Docker's concurrent rule alone", strings.Join(got, "\n"))
	}
}

func TestARollbackDeletesAChainTheRepairCreated(t *testing.T) {
	h := newChurnHost(t, "docker-28.5-nft-proxy-off-nat-docker-deleted")
	s, p := h.plan()
	before := map[string]string{}
	for k := range h.fw.tables {
		before[k] = h.fw.save(k)
	}
	o := testOptions(t, h.fw)
	o.Planned = s
	o.Recheck = func(context.Context) ([]diagnose.Finding, error) { return diagnose.Run(s, diagnose.Options{}), nil }
	if _, err := Apply(context.Background(), p, o); err == nil {
		t.Fatal("no rollback")
	}
	for k, want := range before {
		if got := h.fw.save(k); got != want {
			t.Errorf("%s after the rollback:\n%s\nwant as before:\n%s", k, got, want)
		}
	}
}

func lines(p *diagnose.Plan) []string {
	var out []string
	for _, op := range p.Ops {
		out = append(out, op.Line())
	}
	return out
}
