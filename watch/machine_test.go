package watch

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 12, 1, 3, 0, 0, 0, time.UTC)

func at(d time.Duration) time.Time { return t0.Add(d) }

var (
	healthy = Verdict{}
	flushed = Verdict{
		Keys:       []string{"docker-chain-missing family=ipv4", "dnat-missing family=ipv4 table=nat chain=DOCKER"},
		IDs:        []string{"docker-chain-missing", "dnat-missing"},
		Repairable: true,
	}
	hostile = Process{PID: 4242, Comm: "iptables-nft", PPID: 1, ParentComm: "bash"}
	dockerd = Process{PID: 900, Comm: "iptables", PPID: 800, ParentComm: "dockerd"}
)

func kinds(evs []Event) string {
	var s []string
	for _, e := range evs {
		s = append(s, string(e.Event))
	}
	return strings.Join(s, ",")
}

func TestAHealthyStartIsOneHealthyEvent(t *testing.T) {
	m := NewMachine(Config{}, t0)
	if !m.Due().Equal(t0) {
		t.Fatalf("first check due %v, want at start", m.Due())
	}
	evs, repair := m.Checked(at(0), healthy, nil)
	if kinds(evs) != "healthy" || repair {
		t.Fatalf("events %q repair %v, want one healthy and no repair", kinds(evs), repair)
	}
	evs, _ = m.Checked(at(time.Minute), healthy, nil)
	if len(evs) != 0 {
		t.Errorf("a second healthy check emitted %q, want nothing", kinds(evs))
	}
}

func TestAFlushBySomeoneElseIsDriftAttributedToThem(t *testing.T) {
	m := NewMachine(Config{}, t0)
	m.Checked(at(0), healthy, nil)
	m.Change(at(10*time.Second), Change{Source: "nftables", Generation: 7, By: hostile, What: []string{"ip nat DOCKER: 4 rules deleted"}})
	if want := at(10*time.Second + DefaultSettle); !m.Due().Equal(want) {
		t.Fatalf("check due %v, want %v (Settle after the change)", m.Due(), want)
	}
	// More changes of the same burst do not postpone the check.
	m.Change(at(10*time.Second+100*time.Millisecond), Change{Source: "nftables", Generation: 8, By: hostile})
	if want := at(10*time.Second + DefaultSettle); !m.Due().Equal(want) {
		t.Fatalf("check postponed to %v, want %v", m.Due(), want)
	}
	evs, repair := m.Checked(m.Due(), flushed, nil)
	if kinds(evs) != "drift" || repair {
		t.Fatalf("events %q repair %v, want drift and no repair without Fix", kinds(evs), repair)
	}
	e := evs[0]
	if e.By == nil || e.By.PID != 4242 || e.By.Comm != "iptables-nft" || e.Generation != 8 {
		t.Errorf("by %+v generation %d, want pid 4242 (iptables-nft), generation 8", e.By, e.Generation)
	}
	if want := "ip nat DOCKER: 4 rules deleted by pid 4242 (iptables-nft)"; e.Message != want {
		t.Errorf("message %q, want %q", e.Message, want)
	}
	if strings.Join(e.Findings, ",") != "dnat-missing,docker-chain-missing" {
		t.Errorf("findings %v, want the IDs sorted", e.Findings)
	}
	if m.DriftEvents != 1 {
		t.Errorf("drift events %d, want 1", m.DriftEvents)
	}
	// The same findings again: no second alarm.
	evs, _ = m.Checked(at(time.Minute), flushed, nil)
	if len(evs) != 0 {
		t.Errorf("the same drift again emitted %q", kinds(evs))
	}
	evs, _ = m.Checked(at(2*time.Minute), healthy, nil)
	if kinds(evs) != "healthy" {
		t.Errorf("back to health emitted %q, want healthy", kinds(evs))
	}
}

func TestDockersOwnChangesNeverRaiseDrift(t *testing.T) {
	for _, c := range []struct {
		name string
		feed func(m *Machine, now time.Time)
	}{
		{"a container start event", func(m *Machine, now time.Time) {
			m.Docker(now, DockerEvent{Type: "container", Action: "start", Actor: "web"})
		}},
		{"a ruleset change made by dockerd's iptables", func(m *Machine, now time.Time) {
			m.Change(now, Change{Source: "nftables", Generation: 3, By: dockerd})
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := NewMachine(Config{Fix: true}, t0)
			m.Checked(at(0), healthy, nil)
			c.feed(m, at(time.Minute))
			// Half-written rules seen within DockerQuiet: not drift.
			evs, repair := m.Checked(at(time.Minute+200*time.Millisecond), flushed, nil)
			if len(evs) != 0 || repair {
				t.Fatalf("Docker at work: events %q repair %v, want none", kinds(evs), repair)
			}
			if want := at(time.Minute + DefaultDockerQuiet); !m.Due().Equal(want) {
				t.Fatalf("re-check due %v, want %v", m.Due(), want)
			}
			evs, _ = m.Checked(m.Due(), healthy, nil)
			if len(evs) != 0 {
				t.Errorf("Docker finished: events %q, want none (it was healthy all along)", kinds(evs))
			}
		})
	}
}

func TestFindingsThatOutlastDockersWorkAreDrift(t *testing.T) {
	m := NewMachine(Config{}, t0)
	m.Checked(at(0), healthy, nil)
	m.Docker(at(time.Minute), DockerEvent{Type: "network", Action: "create"})
	m.Checked(at(time.Minute+time.Second), flushed, nil)
	evs, _ := m.Checked(at(time.Minute+DefaultDockerQuiet), flushed, nil)
	if kinds(evs) != "drift" {
		t.Errorf("events %q, want drift once Docker is quiet", kinds(evs))
	}
}

func TestRepairsStopAfterMaxRepairsAndSayWhoUndoesThem(t *testing.T) {
	m := NewMachine(Config{Fix: true, MaxRepairs: 3, RepairWindow: 10 * time.Minute, Self: 100}, t0)
	m.Checked(at(0), healthy, nil)
	now := at(time.Minute)
	for i := range 3 {
		m.Change(now, Change{Source: "nftables", Generation: uint32(10 + i), By: hostile})
		now = now.Add(DefaultSettle)
		evs, repair := m.Checked(now, flushed, nil)
		if kinds(evs) != "drift" || !repair {
			t.Fatalf("round %d: events %q repair %v, want drift and a repair", i, kinds(evs), repair)
		}
		evs = m.Repaired(now, flushed, RepairOutcome{Repaired: flushed.IDs})
		if kinds(evs) != "repaired" {
			t.Fatalf("round %d: after the repair %q, want repaired", i, kinds(evs))
		}
		// Our own iptables-restore's change is not drift, and not an undo.
		m.Change(now, Change{Source: "nftables", By: Process{PID: 555, Comm: "iptables-nft-re", PPID: 100}})
		evs, _ = m.Checked(now.Add(time.Second), healthy, nil)
		if kinds(evs) != "healthy" {
			t.Fatalf("round %d: after the repair's check %q, want healthy", i, kinds(evs))
		}
		now = now.Add(30 * time.Second)
	}
	m.Change(now, Change{Source: "nftables", Generation: 20, By: hostile})
	evs, repair := m.Checked(now.Add(DefaultSettle), flushed, nil)
	if repair {
		t.Fatal("a fourth repair within the window was allowed")
	}
	if kinds(evs) != "drift,drift" {
		t.Fatalf("events %q, want the drift and the stop", kinds(evs))
	}
	stop := evs[1]
	if !strings.Contains(stop.Message, "repairs stopped: 3 repairs") || !strings.Contains(stop.Message, "pid 4242 (iptables-nft)") {
		t.Errorf("stop message %q does not say how many and who", stop.Message)
	}
	if stop.By == nil || stop.By.PID != 4242 {
		t.Errorf("stop by %+v, want the undoer", stop.By)
	}
	if !m.Stopped() || m.Repairs[RepairOK] != 3 || m.Repairs[RepairLimited] != 1 {
		t.Errorf("stopped %v repairs %v", m.Stopped(), m.Repairs)
	}
	// Stays in alarm, and quiet: no repeated stop.
	evs, repair = m.Checked(now.Add(time.Minute), flushed, nil)
	if len(evs) != 0 || repair {
		t.Errorf("still broken: events %q repair %v, want none", kinds(evs), repair)
	}
	// Even after the window, no repair until the host was seen healthy
	// by someone else's hand.
	if _, repair = m.Checked(now.Add(time.Hour), flushed, nil); repair {
		t.Error("repairs resumed while the host stayed broken")
	}
	m.Checked(now.Add(time.Hour+time.Second), healthy, nil)
	if m.Stopped() {
		t.Error("a healthy host did not reset the stop")
	}
}

func TestErrorsAreEmittedOnceUntilTheyChange(t *testing.T) {
	m := NewMachine(Config{}, t0)
	boom := errors.New("reading rules: iptables-save: exit status 4")
	for i, want := range []string{"error", "", "healthy"} {
		var evs []Event
		if i < 2 {
			evs, _ = m.Checked(at(time.Duration(i)*time.Second), Verdict{}, boom)
		} else {
			evs, _ = m.Checked(at(time.Duration(i)*time.Second), healthy, nil)
		}
		if kinds(evs) != want {
			t.Errorf("check %d: events %q, want %q", i, kinds(evs), want)
		}
	}
	evs := m.Change(at(time.Minute), Change{Source: "nftables", Err: errors.New("netlink receive: no buffer space available")})
	if kinds(evs) != "error" || !strings.Contains(evs[0].Message, "nftables events") {
		t.Errorf("source error: %+v", evs)
	}
}

func TestAFailedRepairCountsTowardsTheLimit(t *testing.T) {
	m := NewMachine(Config{Fix: true, MaxRepairs: 1}, t0)
	m.Checked(at(0), healthy, nil)
	_, repair := m.Checked(at(time.Minute), flushed, nil)
	if !repair {
		t.Fatal("no repair asked")
	}
	evs := m.Repaired(at(time.Minute), flushed, RepairOutcome{Err: errors.New("rolled back")})
	if kinds(evs) != "error" || m.Repairs[RepairFailed] != 1 {
		t.Fatalf("events %q repairs %v", kinds(evs), m.Repairs)
	}
	if _, repair = m.Checked(at(time.Minute+time.Second), flushed, nil); repair {
		t.Error("a second repair within the window after MaxRepairs 1")
	}
}

func TestABurstOfThousandsOfChangesKeepsBoundedState(t *testing.T) {
	m := NewMachine(Config{}, t0)
	m.Checked(at(0), healthy, nil)
	for i := range 10000 {
		m.Change(at(time.Duration(i)*time.Millisecond), Change{Source: "nftables", Generation: uint32(i), By: hostile, What: []string{fmt.Sprintf("ip nat DOCKER: rule %d deleted", i)}})
	}
	if len(m.what) > 8 {
		t.Errorf("kept %d change descriptions, want at most 8", len(m.what))
	}
}

func TestAnExpensiveCheckDelaysTheNextOneByItsOwnCost(t *testing.T) {
	m := NewMachine(Config{}, t0)
	m.Checked(at(10*time.Second), healthy, nil)
	m.Spent(at(10*time.Second), 10*time.Second) // a 100k-rule host
	m.Change(at(11*time.Second), Change{Source: "nftables", By: hostile})
	if want := at(20 * time.Second); !m.Due().Equal(want) {
		t.Errorf("check due %v, want %v (not before the last check's cost has passed again)", m.Due(), want)
	}
	m.Checked(at(20*time.Second), flushed, nil)
	m.Spent(at(20*time.Second), 100*time.Millisecond)
	m.Change(at(time.Minute), Change{Source: "nftables", By: hostile})
	if want := at(time.Minute + DefaultSettle); !m.Due().Equal(want) {
		t.Errorf("after a quiet spell the check is due %v, want %v", m.Due(), want)
	}
}

var (
	natDocker  = ChainRef{Family: "ipv4", Table: "nat", Chain: "DOCKER"}
	filterUser = ChainRef{Family: "ipv4", Table: "filter", Chain: "DOCKER-USER"}
	ruleChange = func(by Process, chains ...ChainRef) Change {
		return Change{Source: "nftables", Generation: 9, By: by, RulesOnly: true, Chains: chains}
	}
)

func TestTheScopeOfEachCheck(t *testing.T) {
	tests := []struct {
		name string
		// feed runs between a first, full check and the next Begin.
		feed func(m *Machine)
		want Scope
	}{
		{"a rule change by someone else re-reads its chain", func(m *Machine) {
			m.Change(at(time.Second), ruleChange(hostile, natDocker))
		}, Scope{Chains: []ChainRef{natDocker}}},
		{"changes of two chains re-read both, once each", func(m *Machine) {
			m.Change(at(time.Second), ruleChange(hostile, natDocker))
			m.Change(at(time.Second), ruleChange(hostile, filterUser, natDocker))
		}, Scope{Chains: []ChainRef{natDocker, filterUser}}},
		{"a change the source cannot scope is a full read", func(m *Machine) {
			m.Change(at(time.Second), ruleChange(hostile, natDocker))
			m.Change(at(time.Second), Change{Source: "nftables", By: hostile, What: []string{"ip filter FOO: chain added"}})
		}, Scope{Full: true}},
		{"a poll is a full read", func(m *Machine) {
			m.Change(at(time.Second), Change{Source: "poll", What: []string{"legacy rules changed"}})
		}, Scope{Full: true}},
		{"Docker's own rule change is a full read", func(m *Machine) {
			m.Change(at(time.Second), ruleChange(dockerd, natDocker))
		}, Scope{Full: true}},
		{"Docker's event is a full read", func(m *Machine) {
			m.Change(at(time.Second), ruleChange(hostile, natDocker))
			m.Docker(at(time.Second), DockerEvent{Type: "container", Action: "start"})
		}, Scope{Full: true}},
		{"the resync is a full read", func(m *Machine) {
			m.Tick(at(time.Hour))
		}, Scope{Full: true}},
		{"our own repair's change is a full read", func(m *Machine) {
			m.Change(at(time.Second), ruleChange(Process{PID: 77, Comm: "iptables-nft-res", PPID: 55}, natDocker))
		}, Scope{Full: true}},
		{"a source error is a full read", func(m *Machine) {
			m.Change(at(time.Second), Change{Source: "nftables", Err: errors.New("netlink: boom")})
		}, Scope{Full: true}},
		{"a failed check makes the next one full", func(m *Machine) {
			m.Change(at(time.Second), ruleChange(hostile, natDocker))
			m.Begin(at(2 * time.Second))
			m.Checked(at(2*time.Second), Verdict{}, errors.New("reading rules: boom"))
			m.Change(at(3*time.Second), ruleChange(hostile, natDocker))
		}, Scope{Full: true}},
		{"more chains than a check re-reads one by one is a full read", func(m *Machine) {
			for i := range maxChains + 1 {
				m.Change(at(time.Second), ruleChange(hostile, ChainRef{"ipv4", "filter", fmt.Sprintf("C%d", i)}))
			}
		}, Scope{Full: true}},
		{"nothing changed is a full read (the safe default)", func(m *Machine) {}, Scope{Full: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := NewMachine(Config{Self: 55}, t0)
			if sc := m.Begin(t0); !sc.Full {
				t.Fatalf("first check's scope %+v, want full", sc)
			}
			m.Checked(t0, healthy, nil)
			tt.feed(m)
			got := m.Begin(at(time.Hour))
			if got.Full != tt.want.Full || !slices.Equal(got.Chains, tt.want.Chains) {
				t.Errorf("scope %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestAChangeWhileACheckRunsIsCheckedAgain(t *testing.T) {
	m := NewMachine(Config{}, t0)
	m.Begin(t0)
	m.Checked(t0, healthy, nil)
	if !m.Due().IsZero() {
		t.Fatalf("check due %v after a quiet first check, want none", m.Due())
	}
	m.Change(at(time.Second), ruleChange(hostile, natDocker))
	sc := m.Begin(m.Due())
	// The check read the host; a change came before it ended.
	m.Change(at(time.Second+200*time.Millisecond), ruleChange(hostile, filterUser))
	m.Checked(at(time.Second+300*time.Millisecond), healthy, nil)
	if len(sc.Chains) != 1 || sc.Chains[0] != natDocker {
		t.Errorf("first scope %+v, want nat DOCKER", sc)
	}
	if want := at(time.Second + 200*time.Millisecond + DefaultSettle); !m.Due().Equal(want) {
		t.Fatalf("next check due %v, want %v (the change during the check, Settle later)", m.Due(), want)
	}
	if sc := m.Begin(m.Due()); sc.Full || len(sc.Chains) != 1 || sc.Chains[0] != filterUser {
		t.Errorf("second scope %+v, want filter DOCKER-USER", sc)
	}
}

// TestAnExtraHealthyCheckAfterARepairKeepsWhoUndidIt: after a repair, a
// second healthy check (asked for by the repair's own rule writes) heals
// nothing; and a flush whose change event comes after the check that
// sees it has no process of its own. The stop still names the undoer
// (under load the e2e's stop said "an unknown process").
func TestAnExtraHealthyCheckAfterARepairKeepsWhoUndidIt(t *testing.T) {
	m := NewMachine(Config{Fix: true, MaxRepairs: 2, RepairWindow: 10 * time.Minute, Self: 100}, t0)
	m.Checked(at(0), healthy, nil)
	now := at(time.Minute)
	for i := range 2 {
		m.Change(now, Change{Source: "nftables", Generation: uint32(10 + i), By: hostile})
		now = now.Add(DefaultSettle)
		if _, repair := m.Checked(now, flushed, nil); !repair {
			t.Fatalf("round %d: no repair", i)
		}
		m.Repaired(now, flushed, RepairOutcome{Repaired: flushed.IDs})
		m.Checked(now.Add(time.Second), healthy, nil)
		m.Checked(now.Add(2*time.Second), healthy, nil) // the extra one
		now = now.Add(10 * time.Second)
	}
	// The check reads the flush before the flush's own event: the
	// verdict waits one Settle for it.
	if evs, repair := m.Checked(now, flushed, nil); len(evs) != 0 || repair {
		t.Fatalf("events %q repair %v before the change's event, want a wait", kinds(evs), repair)
	}
	// No event comes: the drift, and the stop naming the last undoer.
	evs, repair := m.Checked(now.Add(DefaultSettle), flushed, nil)
	if repair || kinds(evs) != "drift,drift" {
		t.Fatalf("events %q repair %v, want the drift and the stop", kinds(evs), repair)
	}
	if stop := evs[1].Message; !strings.Contains(stop, "last by pid 4242 (iptables-nft)") {
		t.Errorf("stop message %q does not name the undoer", stop)
	}
}

// TestADriftReadBeforeItsEventWaitsForIt: right after a repair, a check
// that sees drift before the change's own event waits one Settle, and the
// event that comes meanwhile names who made it.
func TestADriftReadBeforeItsEventWaitsForIt(t *testing.T) {
	m := NewMachine(Config{Fix: true, MaxRepairs: 3, RepairWindow: 10 * time.Minute, Self: 100}, t0)
	m.Checked(at(0), healthy, nil)
	now := at(time.Minute)
	m.Change(now, Change{Source: "nftables", Generation: 10, By: hostile})
	now = now.Add(DefaultSettle)
	m.Checked(now, flushed, nil)
	m.Repaired(now, flushed, RepairOutcome{Repaired: flushed.IDs})
	m.Checked(now.Add(time.Second), healthy, nil)
	now = now.Add(2 * time.Second)
	if evs, _ := m.Checked(now, flushed, nil); len(evs) != 0 {
		t.Fatalf("events %q, want a wait for the change's event", kinds(evs))
	}
	m.Change(now.Add(10*time.Millisecond), Change{Source: "nftables", Generation: 11, By: hostile, What: []string{`element "docker0" deleted`}})
	evs, repair := m.Checked(now.Add(DefaultSettle), flushed, nil)
	if kinds(evs) != "drift" || !repair {
		t.Fatalf("events %q repair %v, want the drift and a repair", kinds(evs), repair)
	}
	if evs[0].By == nil || evs[0].By.PID != hostile.PID || evs[0].Generation != 11 || !strings.Contains(evs[0].Message, "docker0") {
		t.Errorf("drift by %+v generation %d message %q, want the late event's", evs[0].By, evs[0].Generation, evs[0].Message)
	}
}
