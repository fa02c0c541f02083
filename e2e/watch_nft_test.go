package e2e

import (
	"strings"
	"testing"
	"time"
)

// TestWatchOnDocker29Nftables runs watch --fix against one Docker 29.8.1
// host with its nftables firewall backend (no iptables rule at all; its
// own tables ip and ip6 docker-bridges, written by dockerd through nft):
//
//   - container churn (a container with a published port started and
//     removed, a network created and removed) raises no drift;
//   - a flush of the DNAT chain nat-prerouting-and-output, then the
//     deletion of docker0's element of the verdict map
//     filter-forward-in-jumps, are each reported within 2 s as drift,
//     with the nft process that made them and the table and chain in the
//     message; --fix repairs each, and doctor exits 0 afterwards.
//
// One daemon for the whole test.
func TestWatchOnDocker29Nftables(t *testing.T) {
	start := time.Now()
	t.Cleanup(func() { t.Logf("watch on Docker 29 nftables: %s", time.Since(start).Round(time.Second)) })
	h := startDockerHostFull(t, &dockerHost{Name: "watch29", Version: "29", Backend: "nft", Proxy: "on", Firewall: "nftables"})
	if ruleset := h.ipt(t, "nft", "list", "ruleset"); !strings.Contains(ruleset, "table ip docker-bridges {") {
		t.Fatalf("no table ip docker-bridges:\n%s", ruleset)
	}
	backups := t.TempDir()
	w := h.startWatch(t, "--fix", "--backup-dir", backups)
	if w.next("healthy", probeDeadline) == nil {
		t.Fatalf("watch never said healthy:\n%s", w.stderr.String())
	}

	t.Run("container churn raises no drift", func(t *testing.T) {
		n := w.count()
		h.docker(t, "run", "-d", "--name", "churn", "-p", "8099:80", "bb:local", "/bin/busybox", "httpd", "-f", "-p", "80", "-h", "/www")
		h.docker(t, "rm", "-f", "churn")
		h.docker(t, "network", "create", "churnnet")
		h.docker(t, "network", "rm", "churnnet")
		// Docker's quiet period (3 s) and a check after it.
		deadline := time.Now().Add(6 * time.Second)
		for time.Now().Before(deadline) {
			for _, e := range w.since(n) {
				if e.Event == "drift" || e.Event == "repaired" || e.Event == "error" {
					t.Fatalf("Docker's own changes raised %s: %+v", e.Event, e)
				}
			}
			time.Sleep(100 * time.Millisecond)
		}
	})

	for _, tc := range []struct {
		name  string
		cmd   []string
		where string // in the drift message
	}{
		{"a flush of the DNAT chain", []string{"nft", "flush", "chain", "ip", "docker-bridges", "nat-prerouting-and-output"}, "ip docker-bridges nat-prerouting-and-output"},
		// The kernel's element message names its set, but the netlink
		// library drops the name (and, for a deletion, the kernel sends no
		// verdict): the element's key says which it is.
		{"a verdict-map element deleted", []string{"nft", "delete", "element", "ip", "docker-bridges", "filter-forward-in-jumps", `{ "docker0" }`},
			`element "docker0" deleted`},
	} {
		t.Run(tc.name+" is seen within 2 s, attributed, and repaired", func(t *testing.T) {
			began := time.Now()
			h.ipt(t, tc.cmd...)
			d := w.next("drift", 10*time.Second)
			if d == nil {
				t.Fatalf("no drift event:\n%s", w.stderr.String())
			}
			took := time.Since(began)
			t.Logf("%s to drift event: %s (%s)", tc.name, took.Round(time.Millisecond), d.Message)
			if took > 2*time.Second {
				t.Errorf("reported after %s, want within 2 s", took)
			}
			if d.By == nil || d.By.PID == 0 || d.By.Comm != "nft" || d.Generation == 0 {
				t.Errorf("drift by %+v generation %d, want the nft process and its generation", d.By, d.Generation)
			}
			if !strings.Contains(d.Message, tc.where) || !strings.Contains(d.Message, "by pid ") {
				t.Errorf("message %q does not name %s and the process", d.Message, tc.where)
			}
			if w.next("repaired", probeDeadline) == nil || w.next("healthy", probeDeadline) == nil {
				t.Fatalf("no repaired and healthy after it:\n%s", w.stderr.String())
			}
			if a := h.nftablesDoctor(t); a.exit != 0 || len(a.ids) > 0 {
				t.Errorf("doctor after watch's repair: %s", a)
			}
		})
	}
	w.stop(t)
}
