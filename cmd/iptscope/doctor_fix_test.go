package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/iptscope/iptscope/collect"
	"github.com/iptscope/iptscope/snapshot"
)

// TestDoctorFixDryRunGolden plans the repair of every captured bundle:
// `doctor --fix --dry-run --from BUNDLE` (the plan, the payload per table,
// the sysctl changes) and the same with -o json (iptscope.fix/v1 on
// stdout), against testdata/fix/<fixture>.{txt,json}. Update with
// `go test ./cmd/iptscope -run DoctorFix -update`, then read the diff.
func TestDoctorFixDryRunGolden(t *testing.T) {
	for _, bundle := range bundleFixtures(t) {
		name := filepath.Base(filepath.Dir(bundle))
		state := fixtureState(name)
		t.Run(name+" is planned, not applied", func(t *testing.T) {
			out, errOut, code := iptscope(t, "", "doctor", "--fix", "--dry-run", "--from", bundle)
			// Exit as doctor does: 0 when there is nothing to do, 1 while
			// the host needs a repair or findings remain; 2 for a partial
			// check (Docker 29's nftables backend, not read yet).
			if code != exitOK && code != exitProblems && !(code == exitUnknown && strings.Contains(name, "-nftables-")) {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			golden(t, filepath.Join("fix", name+".txt"), "exit "+itoa(code)+"\n"+out)
			switch {
			case strings.Contains(name, "-nftables-"):
				if !strings.Contains(out, "nothing to repair") && !strings.Contains(out, "ip_forward") {
					t.Errorf("nftables backend: want nothing planned but ip_forward:\n%s", out)
				}
			case state == "healthy":
				if !strings.Contains(out, "nothing to repair") || code != exitOK {
					t.Errorf("healthy host: want \"nothing to repair\" and exit 0, got exit %d:\n%s", code, out)
				}
			case strings.Contains(out, "nothing to repair"):
				if state != "backend-split" && state != "legacy-leftovers" && state != "saved-rules-restored" {
					t.Errorf("broken state %s: nothing planned:\n%s", state, out)
				}
			default:
				if !strings.Contains(out, "dry run: nothing changed") {
					t.Errorf("no \"dry run: nothing changed\":\n%s", out)
				}
			}

			jout, jerr, jcode := iptscope(t, "", "doctor", "--fix", "--dry-run", "--from", bundle, "-o", "json")
			if jcode != code {
				t.Errorf("-o json exits %d, the text output %d: %s", jcode, code, jerr)
			}
			var fj struct {
				Schema string `json:"schema"`
				Plan   struct {
					Ops []struct {
						Kind string `json:"kind"`
					} `json:"ops"`
				} `json:"plan"`
				Payloads map[string]string `json:"payloads"`
				Applied  bool              `json:"applied"`
			}
			if err := json.Unmarshal([]byte(jout), &fj); err != nil {
				t.Fatalf("-o json is not JSON: %v\n%s", err, jout)
			}
			if fj.Schema != "iptscope.fix/v1" || fj.Applied {
				t.Errorf("schema %q applied %v", fj.Schema, fj.Applied)
			}
			for key, text := range fj.Payloads {
				// One iptables-restore --noflush payload per table.
				table := key[strings.Index(key, "/")+1:]
				if table == "docker-bridges" {
					// Docker's nftables table: one nft -f transaction.
					if !strings.Contains(out, strings.SplitN(text, "\n", 2)[0]) {
						t.Errorf("payload %s is not in the text output", key)
					}
					continue
				}
				if !strings.HasPrefix(text, "*"+table+"\n") || !strings.HasSuffix(text, "COMMIT\n") {
					t.Errorf("payload %s is not one table's restore input:\n%s", key, text)
				}
				if !strings.Contains(out, strings.TrimSuffix(strings.SplitN(text, "\n", 3)[1], "\n")) {
					t.Errorf("payload %s is not in the text output", key)
				}
			}
			if state == "healthy" && (len(fj.Plan.Ops) != 0 || len(fj.Payloads) != 0) {
				t.Errorf("healthy host: %d ops, %d payloads", len(fj.Plan.Ops), len(fj.Payloads))
			}
			golden(t, filepath.Join("fix", name+".json"), jout)
		})
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// brokenBundle is a captured bundle with a plan to apply.
const brokenBundle = "../../fixtures/docker-28.5-nft-proxy-off-nat-docker-flushed/bundle.json"

func TestDoctorFixRefusals(t *testing.T) {
	t.Run("a bundle from --from is planned but never applied", func(t *testing.T) {
		out, errOut, code := iptscope(t, "", "doctor", "--fix", "--yes", "--from", brokenBundle)
		if code != exitUnknown || !strings.Contains(errOut, "never applied") {
			t.Errorf("exit %d, stderr %q", code, errOut)
		}
		if !strings.Contains(out, "iptables-restore --noflush payload") {
			t.Errorf("the plan is not shown before the refusal:\n%s", out)
		}
	})
	t.Run("without a terminal and without --yes nothing is applied", func(t *testing.T) {
		data, err := os.ReadFile(brokenBundle)
		if err != nil {
			t.Fatal(err)
		}
		// The live path, fed a captured host instead of this machine: the
		// refusal comes before any command runs.
		old := collectLive
		t.Cleanup(func() { collectLive = old })
		collectLive = func(context.Context, collect.Options) *snapshot.Snapshot {
			s, err := snapshot.Load(data)
			if err != nil {
				t.Fatal(err)
			}
			return s
		}
		_, errOut, code := iptscope(t, "y\n", "doctor", "--fix")
		if code != exitUnknown || !strings.Contains(errOut, "not a terminal") || !strings.Contains(errOut, "--yes") {
			t.Errorf("exit %d, stderr %q", code, errOut)
		}
	})
	t.Run("--dry-run on a healthy bundle says nothing to repair", func(t *testing.T) {
		out, _, code := iptscope(t, "", "doctor", "--fix", "--dry-run", "--from", "../../fixtures/docker-20.10-legacy-proxy-on-healthy/bundle.json")
		if code != exitOK || !strings.Contains(out, "nothing to repair") || strings.Contains(out, "payload") {
			t.Errorf("exit %d:\n%s", code, out)
		}
	})
}

// TestPrintedPayloadPastesIntoIptablesRestore: the text plan prints each
// payload exactly as the JSON has it, not indented (iptables-restore
// refuses an indented line), so that a person can paste it.
func TestPrintedPayloadPastesIntoIptablesRestore(t *testing.T) {
	bundle := "../../fixtures/docker-28.5-nft-proxy-off-nat-docker-flushed/bundle.json"
	out, _, _ := iptscope(t, "", "doctor", "--fix", "--dry-run", "--from", bundle)
	jout, _, _ := iptscope(t, "", "doctor", "--fix", "--dry-run", "--from", bundle, "-o", "json")
	var fj struct {
		Payloads map[string]string `json:"payloads"`
	}
	if err := json.Unmarshal([]byte(jout), &fj); err != nil {
		t.Fatal(err)
	}
	want := fj.Payloads["ipv4/nat"]
	if want == "" || !strings.Contains(out, "payload:\n"+want) {
		t.Errorf("the text plan does not hold the payload as is:\n%s\nwant:\n%s", out, want)
	}
}
