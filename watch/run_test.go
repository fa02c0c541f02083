package watch

import (
	"context"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeHost is a host whose state the test sets: broken or not, and
// whether a repair heals it.
type fakeHost struct {
	mu      sync.Mutex
	broken  bool
	checks  atomic.Int64
	repairs atomic.Int64
}

func (h *fakeHost) set(broken bool) {
	h.mu.Lock()
	h.broken = broken
	h.mu.Unlock()
}

func (h *fakeHost) Check(context.Context, Scope) (Verdict, error) {
	h.checks.Add(1)
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.broken {
		return flushed, nil
	}
	return healthy, nil
}

func (h *fakeHost) Repair(context.Context) (RepairOutcome, error) {
	h.repairs.Add(1)
	h.set(false)
	return RepairOutcome{Repaired: flushed.IDs}, nil
}

// events collects what Run emits and lets the test wait for a kind.
type events struct {
	mu  sync.Mutex
	evs []Event
	ch  chan Event
}

func newEvents() *events { return &events{ch: make(chan Event, 1024)} }

func (e *events) emit(ev Event) {
	e.mu.Lock()
	e.evs = append(e.evs, ev)
	e.mu.Unlock()
	select {
	case e.ch <- ev:
	default:
	}
}

func (e *events) waitFor(t *testing.T, k Kind) Event {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case ev := <-e.ch:
			if ev.Event == k {
				return ev
			}
		case <-deadline:
			t.Fatalf("no %s event within 10 s", k)
		}
	}
}

func TestRunReportsAFlushAndRepairsIt(t *testing.T) {
	h := &fakeHost{}
	changes := make(chan Change)
	ev := newEvents()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Config{Fix: true, Settle: time.Millisecond, Resync: time.Hour}, h, Sources{Changes: changes}, nil, ev.emit, nil)
	}()
	ev.waitFor(t, KindHealthy)
	h.set(true)
	start := time.Now()
	changes <- Change{Source: "nftables", Generation: 2, By: hostile}
	d := ev.waitFor(t, KindDrift)
	if d.By == nil || d.By.PID != hostile.PID {
		t.Errorf("drift by %+v", d.By)
	}
	ev.waitFor(t, KindRepaired)
	ev.waitFor(t, KindHealthy)
	t.Logf("flush to healthy again: %v", time.Since(start))
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run returned %v on cancel, want nil", err)
	}
}

// TestSoakThousandsOfChangesLeakNothing feeds 20,000 change events and
// 2,000 Docker events and checks that Run's goroutines and heap come
// back to where they were.
func TestSoakThousandsOfChangesLeakNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("soak")
	}
	runtime.GC()
	baseG := runtime.NumGoroutine()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	baseHeap := ms.HeapAlloc

	h := &fakeHost{}
	changes := make(chan Change, 64)
	docker := make(chan DockerEvent, 64)
	ev := newEvents()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Config{Fix: true, Settle: time.Microsecond, DockerQuiet: time.Microsecond, Resync: time.Millisecond, MaxRepairs: 1000000}, h, Sources{Changes: changes, Docker: docker}, nil, ev.emit, nil)
	}()
	for i := range 20000 {
		if i%100 == 0 {
			h.set(true)
		}
		changes <- Change{Source: "nftables", Generation: uint32(i), By: hostile, What: []string{"ip nat DOCKER: rule deleted"}}
		if i%10 == 0 {
			docker <- DockerEvent{Type: "container", Action: "start"}
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	ev.mu.Lock()
	ev.evs = nil
	ev.mu.Unlock()
	t.Logf("%d checks, %d repairs", h.checks.Load(), h.repairs.Load())
	if h.checks.Load() == 0 {
		t.Fatal("no check ran")
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > baseG && time.Now().Before(deadline) {
		runtime.Gosched()
		time.Sleep(10 * time.Millisecond)
	}
	if g := runtime.NumGoroutine(); g > baseG {
		t.Errorf("%d goroutines after Run returned, %d before", g, baseG)
	}
	runtime.GC()
	runtime.ReadMemStats(&ms)
	if grown := int64(ms.HeapAlloc) - int64(baseHeap); grown > 4<<20 {
		t.Errorf("heap grew by %d bytes over the soak", grown)
	}
}

// probingHost is a fakeHost whose sysctls the test can change.
type probingHost struct {
	fakeHost
	changed atomic.Bool
	probes  atomic.Int64
}

func (h *probingHost) Probe(context.Context) (bool, error) {
	h.probes.Add(1)
	return h.changed.Swap(false), nil
}

func TestRunChecksAgainOnlyWhenTheProbeSeesAChange(t *testing.T) {
	h := &probingHost{}
	ev := newEvents()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Config{Probe: time.Millisecond, Resync: time.Hour}, h, Sources{}, nil, ev.emit, nil)
	}()
	ev.waitFor(t, KindHealthy)
	for deadline := time.Now().Add(5 * time.Second); h.probes.Load() < 20 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	if n := h.checks.Load(); n != 1 {
		t.Errorf("%d checks after %d probes that saw nothing, want 1 (the first)", n, h.probes.Load())
	}
	h.set(true) // ip_forward turned off: no ruleset event
	h.changed.Store(true)
	ev.waitFor(t, KindDrift)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// scopeHost is a fakeHost that records the scope of each check.
type scopeHost struct {
	fakeHost
	mu     sync.Mutex
	scopes []Scope
}

func (h *scopeHost) Check(ctx context.Context, sc Scope) (Verdict, error) {
	h.mu.Lock()
	h.scopes = append(h.scopes, sc)
	h.mu.Unlock()
	return h.fakeHost.Check(ctx, sc)
}

func (h *scopeHost) last() (Scope, int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.scopes) == 0 {
		return Scope{}, 0
	}
	return h.scopes[len(h.scopes)-1], len(h.scopes)
}

func TestRunHandsTheHostTheChainsThatChanged(t *testing.T) {
	h := &scopeHost{}
	changes := make(chan Change)
	docker := make(chan DockerEvent)
	ev := newEvents()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Config{Settle: time.Millisecond, DockerQuiet: time.Millisecond, Resync: time.Hour}, h, Sources{Changes: changes, Docker: docker}, nil, ev.emit, nil)
	}()
	ev.waitFor(t, KindHealthy)
	wait := func(n int) Scope {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
			if sc, got := h.last(); got >= n {
				return sc
			}
		}
		t.Fatalf("no check %d", n)
		return Scope{}
	}
	if sc := wait(1); !sc.Full {
		t.Errorf("first check's scope %+v, want full", sc)
	}
	h.set(true)
	changes <- Change{Source: "nftables", Generation: 3, By: hostile, RulesOnly: true, Chains: []ChainRef{natDocker}}
	if sc := wait(2); sc.Full || !slices.Equal(sc.Chains, []ChainRef{natDocker}) {
		t.Errorf("scope after a rule change %+v, want nat DOCKER only", sc)
	}
	ev.waitFor(t, KindDrift)
	h.set(false)
	docker <- DockerEvent{Type: "container", Action: "start"}
	if sc := wait(3); !sc.Full {
		t.Errorf("scope after Docker's event %+v, want full", sc)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
