package snapshot

import (
	"fmt"
	"strings"
)

// BackendAuto asks PickDump for the backend that matters.
const BackendAuto = "auto"

// PickDump returns the parsed dump of one family for a backend: "nft",
// "legacy", or BackendAuto (""): the backend that holds Docker's chains
// when exactly one does, else the one `iptables` on the host uses, else
// the only dump of that family there is. It fails, naming what the
// snapshot has, when no such dump exists or it did not parse.
func (s *Snapshot) PickDump(backend, family string) (*RuleDump, error) {
	if backend == "" {
		backend = BackendAuto
	}
	var have []string
	var ofFamily []*RuleDump
	for i := range s.Rules {
		d := &s.Rules[i]
		name := d.Backend
		if name == "" {
			name = "default"
		}
		have = append(have, name+"/"+d.Family)
		if d.Family == family {
			ofFamily = append(ofFamily, d)
		}
	}
	want := backend
	if backend == BackendAuto {
		switch {
		case s.DockerBackend == BackendNFT || s.DockerBackend == BackendLegacy:
			want = s.DockerBackend
		case s.IptablesBackend != "":
			want = s.IptablesBackend
		}
	}
	var d *RuleDump
	for _, c := range ofFamily {
		if c.Backend == want {
			d = c
		}
	}
	if d == nil && backend == BackendAuto && len(ofFamily) > 0 {
		// A dump of plain iptables-save (backend unknown) or the only one.
		for _, c := range ofFamily {
			if c.Backend == "" || len(ofFamily) == 1 {
				d = c
			}
		}
	}
	if d == nil {
		return nil, fmt.Errorf("the snapshot has no %s rules of backend %s (it has: %s)", family, want, strings.Join(have, ", "))
	}
	if d.Ruleset == nil {
		why := d.Error
		if why == "" {
			why = "the dump is empty"
		}
		return nil, fmt.Errorf("the snapshot's %s %s rules cannot be used: %s", d.Backend, family, why)
	}
	return d, nil
}
