package e2e

import (
	"strings"
	"testing"
	"time"
)

// TestChurnWatchFixOnRealDocker runs `watch --fix` against a real
// Docker 28.5 (iptables-nft, userland-proxy off so that only NAT answers,
// live-restore on) while containers with published ports start and stop,
// and flushes nat DOCKER twice during the churn. After the churn stops:
// watch says healthy and then stays quiet (no drift, no repair: no repair
// loop), doctor exits 0, every remaining published port answers, no rule
// names a removed container, and Docker's rules equal what the same
// daemon writes after a live-restore restart.
func TestChurnWatchFixOnRealDocker(t *testing.T) {
	start := time.Now()
	h := startDockerHostFull(t, &dockerHost{Name: "reliabwt", Version: "28.5", Backend: "nft", Proxy: "off", DaemonExtra: `"live-restore": true`})
	backups := t.TempDir()
	// Why --max-repairs 10: the flushes are two; a repair per flush, and
	// one more per flush Docker's churn overtook, stay under it. A loop
	// would reach it and say "repairs stopped".
	w := h.startWatch(t, "--fix", "--max-repairs", "10", "--repair-window", "10m", "--backup-dir", backups)
	if w.next("healthy", probeDeadline) == nil {
		t.Fatalf("watch never said healthy:\n%s", w.stderr.String())
	}
	n0 := w.count()
	// Why paced: watch judges the host once Docker has been quiet for 3
	// s; a churn without pauses would defer every repair to its end.
	// Bursts of two steps, then a pause a little over 3 s: watch judges
	// each flush in a pause, and the repair it calls for runs while
	// Docker starts or removes the next container.
	pauses := []time.Duration{0, 3050 * time.Millisecond, 0, 3300 * time.Millisecond}
	c := startChurnPaced(t, h, func(i int) time.Duration { return pauses[i%len(pauses)] })
	const flushes = 2
	last := 0
	for i := 0; i < flushes; i++ {
		// Two steps of churn between flushes: containers come and go
		// around each repair.
		waitUntil(t, "the churn makes progress", probeDeadline, func() bool { return c.steps() >= last+2 })
		last = c.steps()
		h.ipt(t, "iptables", "-t", "nat", "-F", "DOCKER")
		t.Logf("flush %d of nat DOCKER at churn step %d", i+1, last)
	}
	waitUntil(t, "the churn makes progress after the last flush", probeDeadline, func() bool { return c.steps() >= last+2 })
	churned, errs := c.stop()
	for _, e := range errs {
		t.Logf("churn: %s", e)
	}

	// Quiet now: watch settles healthy, and stays so for 8 s (Docker's
	// quiet period of 3 s, a check, and a probe of what has no events).
	n, changed := w.count(), time.Now()
	settled := waitUntil(t, "watch healthy and quiet for 8 s", probeDeadline, func() bool {
		if m := w.count(); m != n {
			n, changed = m, time.Now()
		}
		evs := w.since(n0)
		return len(evs) > 0 && evs[len(evs)-1].Event == "healthy" && time.Since(changed) >= 8*time.Second
	})
	if !settled {
		t.Errorf("watch did not settle healthy after the churn:\n%s", w.stderr.String())
	}
	events := map[string]int{}
	overlapped := 0
	for _, e := range w.since(n0) {
		events[e.Event]++
		if e.Event == "repaired" && c.during(e.Time) {
			overlapped++
		}
		if strings.Contains(e.Message, "repairs stopped") {
			t.Errorf("watch stopped repairing (a repair loop): %s", e.Message)
		}
	}
	t.Logf("watch --fix under churn: %d containers churned (%d steps), %d flushes, events %v, %d repair(s) ended while a docker command ran", churned, c.steps(), flushes, events, overlapped)
	if events["repaired"] < 1 {
		t.Errorf("no repair during the churn (events %v): were the flushes seen?", events)
	}
	if events["repaired"] > 2*flushes {
		t.Errorf("%d repairs for %d flushes: a repair loop", events["repaired"], flushes)
	}
	w.stop(t)

	if rep, code, stderr := h.doctor(t, ""); code != 0 {
		for _, f := range rep.Findings {
			t.Logf("%s %s: %s", f.Severity, f.ID, f.Title)
		}
		t.Errorf("doctor after the churn: exit %d (%s)", code, stderr)
	}
	h.requireProbe(t)
	running := h.requireChurnPortsAnswer(t)
	h.requireNoRuleForRemoved(t, running)
	fixed := h.saveV4(t)
	if out, err := h.script("restart"); err != nil {
		t.Fatalf("restart: %v\n%s", err, out)
	}
	h.requireProbe(t)
	compareChains(t, h.saveV4(t), fixed)
	t.Logf("watch churn e2e: %s", time.Since(start).Round(time.Second))
}
