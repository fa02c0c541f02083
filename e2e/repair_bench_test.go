package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/iptscope/iptscope/collect"
	"github.com/iptscope/iptscope/diagnose"
	"github.com/iptscope/iptscope/internal/synth"
	"github.com/iptscope/iptscope/parse"
	"github.com/iptscope/iptscope/repair"
	"github.com/iptscope/iptscope/snapshot"
)

// TestRepairSpeed1000Ports (IPTSCOPE_BENCH=1; root) compares two ways of
// putting back the 1,000 DNAT rules of a flushed nat DOCKER chain in a
// throwaway namespace loaded with internal/synth.DockerHost(1000):
//
//	(a) repair.Apply: one iptables-restore --test, one iptables-save -t nat
//	    (backup), one iptables-restore --noflush, and a re-read;
//	(b) one `iptables -t nat -A DOCKER ...` exec per missing rule, what
//	    go-iptables (and Docker itself) does.
//
// A timing, not an assertion: the numbers are logged (docs/repair.md).
func TestRepairSpeed1000Ports(t *testing.T) {
	if os.Getenv("IPTSCOPE_BENCH") != "1" {
		t.Skip("set IPTSCOPE_BENCH=1 to run the repair timing")
	}
	for _, backend := range []string{"nft", "legacy"} {
		t.Run(backend, func(t *testing.T) { benchBackend(t, backend) })
	}
}

func benchBackend(t *testing.T, backend string) {
	requireRoot(t, "ip", "iptables-"+backend)
	ns := "rbench" + backend[:1]
	t.Cleanup(func() { exec.Command("ip", "netns", "delete", ns).Run() })
	exec.Command("ip", "netns", "delete", ns).Run()
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v %s", err, out)
	}
	lock := t.TempDir() + "/xtables.lock"
	r := collect.ExecRunner{Env: []string{"XTABLES_LOCKFILE=" + lock}}
	ctx := context.Background()
	in := func(name string, stdin []byte, args ...string) []byte {
		t.Helper()
		var out []byte
		err := collect.InNetNS(ns, func() error {
			var err error
			out, err = r.Run(ctx, name, args, stdin)
			return err
		})
		if err != nil {
			t.Fatalf("%s %s: %v", name, strings.Join(args, " "), err)
		}
		return out
	}
	dump := synth.DockerHost(1000)
	in("iptables-"+backend+"-restore", dump, "-w", "5")
	snap := synthSnapshot(t, dump, backend)

	flushAndRead := func() {
		in("iptables-"+backend, nil, "-w", "5", "-t", "nat", "-F", "DOCKER")
		raw := in("iptables-"+backend+"-save", nil, "-c")
		rs, err := parse.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		snap.Rules = []snapshot.RuleDump{{Backend: backend, Family: snapshot.FamilyIPv4, Raw: string(raw), Ruleset: rs}}
	}

	// (a) iptscope: plan + test + backup + apply + re-read and re-diagnose.
	flushAndRead()
	start := time.Now()
	plan := diagnose.NewPlan(snap, diagnose.Run(snap, diagnose.Options{}))
	planned := time.Since(start)
	n := 0
	for _, o := range plan.Ops {
		if o.Kind == diagnose.OpAppend || o.Kind == diagnose.OpInsert {
			n++
		}
	}
	if n < 1000 {
		t.Fatalf("plan restores %d rules, want >= 1000", n)
	}
	_, err := repair.Apply(ctx, plan, repair.Options{
		Runner: r, NetNS: ns, BackupDir: t.TempDir(),
		Recheck: func(ctx context.Context) ([]diagnose.Finding, error) {
			raw := in("iptables-"+backend+"-save", nil, "-c")
			rs, err := parse.Parse(raw)
			if err != nil {
				return nil, err
			}
			s2 := *snap
			s2.Rules = []snapshot.RuleDump{{Backend: backend, Family: snapshot.FamilyIPv4, Raw: string(raw), Ruleset: rs}}
			return diagnose.Run(&s2, diagnose.Options{}), nil
		},
	})
	a := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}

	// (b) one exec per rule, same rules, same order.
	flushAndRead()
	start = time.Now()
	for _, o := range plan.Ops {
		if o.Kind != diagnose.OpAppend {
			continue
		}
		in("iptables-"+backend, nil, append([]string{"-w", "5", "-t", "nat", "-A", "DOCKER"}, strings.Fields(o.Spec)...)...)
	}
	b := time.Since(start)
	t.Logf("%s, %d rules restored: (a) iptscope plan+test+backup+apply+verify %s (plan %s); (b) one iptables exec per rule %s; ratio %.0fx",
		backend, n, a.Round(time.Millisecond), planned.Round(time.Millisecond), b.Round(time.Millisecond), float64(b)/float64(a))
	fmt.Fprintf(os.Stderr, "BENCH %s rules=%d iptscope=%s per-rule-exec=%s\n", backend, n, a.Round(time.Millisecond), b.Round(time.Millisecond))
}

// synthSnapshot builds the Docker view synth.DockerHost(ports) implies:
// Docker 28.5.2, proxy on, one network per 250 containers, one container
// per published port (10000+p -> CIP:80).
func synthSnapshot(t *testing.T, dump []byte, backend string) *snapshot.Snapshot {
	t.Helper()
	rs, err := parse.Parse(dump)
	if err != nil {
		t.Fatal(err)
	}
	s := &snapshot.Snapshot{Schema: snapshot.Schema, DockerBackend: backend, IptablesBackend: backend,
		Sysctls: map[string]snapshot.Sysctl{"net.ipv4.ip_forward": {Value: "1", Present: true}},
		Docker:  &snapshot.Docker{Version: "28.5.2", Info: &snapshot.DockerInfo{UserlandProxy: snapshot.ProxyOn}}}
	// Networks and containers from the DNAT rules themselves.
	nets := map[string]bool{}
	for _, r := range rs.Table(parse.TableNAT).Chain("DOCKER").Rules {
		if r.Target != parse.TargetDNAT {
			continue
		}
		br := r.InIface.Value
		d, _ := parse.ParseNATDest(r.NATTo())
		ports, _ := r.DestPorts()
		if !nets[br] {
			nets[br] = true
			var sub string
			for _, m := range rs.Table(parse.TableNAT).Chain("POSTROUTING").Rules {
				if m.OutIface.Value == br {
					sub = m.Source.Value
				}
			}
			s.Docker.Networks = append(s.Docker.Networks, snapshot.Network{ID: br, Name: br, Driver: "bridge", BridgeName: br, Subnets: []string{sub}})
		}
		s.Docker.Containers = append(s.Docker.Containers, snapshot.Container{
			ID: fmt.Sprintf("c%d", ports[0].From), Name: fmt.Sprintf("c%d", ports[0].From), Running: true, State: "running",
			Endpoints: []snapshot.Endpoint{{Network: br, NetworkID: br, IP: d.IP, IPPrefixLen: 22}},
			Ports:     []snapshot.PortBinding{{HostPort: int(ports[0].From), ContainerPort: 80, Proto: "tcp"}},
		})
	}
	s.Rules = []snapshot.RuleDump{{Backend: backend, Family: snapshot.FamilyIPv4, Raw: string(dump), Ruleset: rs}}
	return s
}
