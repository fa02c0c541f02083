package snapshot

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

const save = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n:DOCKER-USER - [0:0]\n[0:0] -A FORWARD -j DOCKER-USER\n[0:0] -A DOCKER-USER -j RETURN\nCOMMIT\n"

func TestLoadRoundTripsAndReparsesRules(t *testing.T) {
	s := &Snapshot{
		Schema:      Schema,
		CollectedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		Rules: []RuleDump{
			{Backend: BackendNFT, Family: FamilyIPv4, Raw: save},
			{Backend: BackendLegacy, Family: FamilyIPv4, Raw: "not iptables\n"},
			{Backend: BackendLegacy, Family: FamilyIPv6, Error: "needs root"},
		},
		Sysctls: map[string]Sysctl{"net.bridge.bridge-nf-call-iptables": {Present: false}},
		Docker:  &Docker{Error: "docker API not reachable at unix:///x: no such file"},
	}
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), `"tables"`) {
		t.Error("the parsed ruleset was serialised")
	}
	got, err := Load(b)
	if err != nil {
		t.Fatal(err)
	}
	nft := got.Dump(BackendNFT, FamilyIPv4)
	if nft == nil || nft.Raw != save || nft.Ruleset.Table("filter").Chain("DOCKER-USER") == nil {
		t.Errorf("nft dump %+v", nft)
	}
	if l := got.Dump(BackendLegacy, FamilyIPv4); l.Ruleset != nil || !strings.Contains(l.Error, "parsing legacy ipv4 rules") {
		t.Errorf("a dump that does not parse: %+v", l)
	}
	if l := got.Dump(BackendLegacy, FamilyIPv6); l.Error != "needs root" {
		t.Errorf("a failed dump keeps its error: %+v", l)
	}
	if got.Dump(BackendNFT, FamilyIPv6) != nil {
		t.Error("a missing dump is not nil")
	}
	if v, ok := got.Sysctls["net.bridge.bridge-nf-call-iptables"]; !ok || v.Present {
		t.Errorf("absent sysctl %+v", v)
	}
	if !got.CollectedAt.Equal(s.CollectedAt) {
		t.Errorf("collected_at %v", got.CollectedAt)
	}
}

func TestLoadRejectsOtherSchemas(t *testing.T) {
	for _, doc := range []string{`{"schema":"iptscope.snapshot/v2"}`, `{"schema":"iptscope.rules/v1","tables":[]}`, `{}`} {
		if _, err := Load([]byte(doc)); !errors.Is(err, ErrSchema) {
			t.Errorf("%s: %v", doc, err)
		}
	}
	if _, err := Load([]byte(`not json`)); err == nil {
		t.Error("not json loaded")
	}
}
