package watch

import (
	"context"
	"time"
)

// Host is what the loop checks and repairs. Check reads the host and
// judges it: all of it when the scope is Full, else it may re-read only
// the rules of the scope's chains and take everything else from its
// last successful check (nothing else changed since). Repair plans and
// applies the repair of what Check found last (the plan, backup, test,
// apply, re-read and rollback of `doctor --fix`). Both are called from
// Run's goroutine only, one at a time.
type Host interface {
	Check(ctx context.Context, scope Scope) (Verdict, error)
	Repair(ctx context.Context) (RepairOutcome, error)
}

// Prober is a Host that can tell cheaply whether what has no event
// stream (sysctls, links, docker-proxy) changed since it last looked
// (or since the last Check). Run calls it every Config.Probe and runs a
// full check only when it says so; an error counts as no change (the
// Resync check covers it).
type Prober interface {
	Probe(ctx context.Context) (changed bool, err error)
}

// Sources are the event streams Run reacts to; a nil channel is a source
// that never says anything. A closed channel is taken as that source
// ending (Run goes on with the others and the interval).
type Sources struct {
	Changes <-chan Change
	Docker  <-chan DockerEvent
}

// Clock is the time as Run sees it (tests pass a fast one).
type Clock interface {
	Now() time.Time
	NewTimer(d time.Duration) (<-chan time.Time, func() bool)
}

// RealClock is the wall clock.
type RealClock struct{}

// Now is time.Now.
func (RealClock) Now() time.Time { return time.Now() }

// NewTimer is time.NewTimer's channel and Stop.
func (RealClock) NewTimer(d time.Duration) (<-chan time.Time, func() bool) {
	t := time.NewTimer(d)
	return t.C, t.Stop
}

// Run checks the host at start, then whenever a source says something
// changed, Docker is done with a change of its own, or Resync
// passes (or the Prober, if h is one, says something changed), and calls emit with each event (from Run's goroutine). After
// every check, afterCheck (if not nil) is called with the machine, for
// the metrics. Run returns nil when ctx is done (SIGTERM), after the
// check or repair in progress, if any, has finished.
func Run(ctx context.Context, cfg Config, h Host, src Sources, clk Clock, emit func(Event), afterCheck func(*Machine, Verdict, error)) error {
	if clk == nil {
		clk = RealClock{}
	}
	m := NewMachine(cfg, clk.Now())
	cfg = m.Config()
	changes, docker := src.Changes, src.Docker
	tickC, tickStop := clk.NewTimer(cfg.Resync)
	defer func() { tickStop() }()
	prober, _ := h.(Prober)
	var probeC <-chan time.Time
	probeStop := func() bool { return false }
	if prober != nil {
		probeC, probeStop = clk.NewTimer(cfg.Probe)
	}
	defer func() { probeStop() }()
	emitAll := func(evs []Event) {
		for _, e := range evs {
			emit(e)
		}
	}
	// drain takes what the sources queued while the host was being read
	// (Docker's "start" that came during the check decides the verdict).
	drain := func() {
		for {
			select {
			case c, ok := <-changes:
				if !ok {
					changes = nil
					continue
				}
				emitAll(m.Change(clk.Now(), c))
			case e, ok := <-docker:
				if !ok {
					docker = nil
					continue
				}
				m.Docker(clk.Now(), e)
			default:
				return
			}
		}
	}
	for {
		var dueC <-chan time.Time
		dueStop := func() bool { return false }
		if d := m.Due(); !d.IsZero() {
			wait := d.Sub(clk.Now())
			if wait < 0 {
				wait = 0
			}
			dueC, dueStop = clk.NewTimer(wait)
		}
		select {
		case <-ctx.Done():
			dueStop()
			return nil
		case c, ok := <-changes:
			if !ok {
				changes = nil
				break
			}
			emitAll(m.Change(clk.Now(), c))
		case e, ok := <-docker:
			if !ok {
				docker = nil
				break
			}
			m.Docker(clk.Now(), e)
		case <-tickC:
			m.Tick(clk.Now())
			tickC, tickStop = clk.NewTimer(cfg.Resync)
		case <-probeC:
			if changed, err := prober.Probe(ctx); err == nil && changed {
				m.Tick(clk.Now())
			}
			probeC, probeStop = clk.NewTimer(cfg.Probe)
		case <-dueC:
			began := clk.Now()
			v, err := h.Check(ctx, m.Begin(began))
			if ctx.Err() != nil {
				return nil
			}
			drain()
			now := clk.Now()
			evs, repair := m.Checked(now, v, err)
			m.Spent(now, now.Sub(began))
			emitAll(evs)
			if afterCheck != nil {
				afterCheck(m, v, err)
			}
			if repair {
				o, err := h.Repair(ctx)
				if err != nil && o.Err == nil {
					o.Err = err
				}
				emitAll(m.Repaired(clk.Now(), v, o))
				if afterCheck != nil {
					afterCheck(m, v, nil)
				}
			}
		}
		dueStop()
	}
}
