package collect

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"strings"
	"sync"

	"github.com/iptscope/iptscope/parse"
	"github.com/iptscope/iptscope/snapshot"
)

// rulesPlan says which dumps to take.
type rulesPlan struct {
	// backends to dump: "nft", "legacy", or the single "" (plain
	// iptables-save) when neither variant is installed.
	backends []string
	// serial runs the dumps one after the other (tests with the ordered
	// FakeRunner); otherwise all run at once.
	serial bool
	// inNS, when set, runs each command inside the target namespace.
	inNS func(func() error) error
	// legacyTables, when set, says (inside the target namespace, like the
	// commands) whether the legacy backend holds any table of a family;
	// when it surely holds none, iptables-legacy-save is not run. See
	// legacyTableNames.
	legacyTables func(Family) (has, known bool)
	// nftRead, when set, reads the nft backend's rules of a family
	// without iptables-nft-save (inside the target namespace, like the
	// commands): nftSave on the live host. On any error the tool runs.
	nftRead func(Family) ([]byte, error)
}

// legacyTableNames is rulesPlan.legacyTables for the live host: it reads
// /proc/thread-self/net/ip_tables_names (ip6_tables_names for IPv6), the
// list iptables-legacy-save itself walks: with the file empty or absent
// (no ip_tables module) the tool prints nothing, so the read gives the same
// answer as the tool without its fork and exec, and a host without legacy
// rules (every nft host) pays nothing for them.
//
// thread-self, not /proc/net (= /proc/self/net): "self" is the thread-group
// leader, whose namespace is the collector's own, while this runs on the
// thread switched into the target namespace. known is false when the
// answer is unsure (no /proc/thread-self before Linux 3.17, an unreadable
// file): then the tool runs.
func legacyTableNames(f Family) (has, known bool) {
	if _, err := os.Stat("/proc/thread-self/net"); err != nil {
		return false, false
	}
	file := "/proc/thread-self/net/ip_tables_names"
	if f == IPv6 {
		file = "/proc/thread-self/net/ip6_tables_names"
	}
	data, err := os.ReadFile(file)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return false, true // module not loaded: no legacy table anywhere
	case err != nil:
		return false, false
	}
	return len(bytes.TrimSpace(data)) > 0, true
}

// planBackends returns the backends whose save tools are on PATH:
// iptables-nft-save and/or iptables-legacy-save, else plain iptables-save.
func planBackends(lookPath func(string) (string, error)) []string {
	var bs []string
	for _, b := range []string{snapshot.BackendNFT, snapshot.BackendLegacy} {
		if _, err := lookPath(SaveCommand(IPv4, b)); err == nil {
			bs = append(bs, b)
		}
	}
	if len(bs) == 0 {
		bs = []string{""}
	}
	return bs
}

// iptablesBackend runs `iptables -V` and says "nft" or "legacy" ("" and an
// error when it cannot tell).
func iptablesBackend(ctx context.Context, r Runner) (string, error) {
	out, err := r.Run(ctx, "iptables", []string{"-V"}, nil)
	if err != nil {
		return "", fmt.Errorf("detecting the iptables backend: %w", err)
	}
	s := string(out)
	switch {
	case strings.Contains(s, "(nf_tables)"):
		return snapshot.BackendNFT, nil
	case strings.Contains(s, "(legacy)"):
		return snapshot.BackendLegacy, nil
	}
	// iptables before 1.8 has no backend suffix and is always legacy.
	if strings.HasPrefix(s, "iptables v1.") && !strings.Contains(s, "(") {
		return snapshot.BackendLegacy, nil
	}
	return "", fmt.Errorf("detecting the iptables backend: unexpected `iptables -V` output %q", strings.TrimSpace(s))
}

// collectRules takes one `-save -c` dump per backend and family and parses
// it. Every dump is returned, failed ones with Error set, in the order
// backends × (ipv4, ipv6).
func collectRules(ctx context.Context, r Runner, p rulesPlan) []snapshot.RuleDump {
	type job struct {
		backend string
		family  Family
	}
	var jobs []job
	for _, b := range p.backends {
		jobs = append(jobs, job{b, IPv4}, job{b, IPv6})
	}
	dumps := make([]snapshot.RuleDump, len(jobs))
	run := func(i int) {
		j := jobs[i]
		d := &dumps[i]
		d.Backend, d.Family = j.backend, string(j.family)
		var out []byte
		var err error
		save := func() error {
			if j.backend == snapshot.BackendLegacy && p.legacyTables != nil {
				if has, known := p.legacyTables(j.family); known && !has {
					return nil // what iptables-legacy-save would print: nothing
				}
			}
			if j.backend == snapshot.BackendNFT && p.nftRead != nil {
				if o, rerr := p.nftRead(j.family); rerr == nil {
					out, d.Reader = o, snapshot.ReaderNetlink
					return nil
				}
			}
			out, err = SaveRules(ctx, r, j.family, j.backend)
			return nil
		}
		if p.inNS != nil {
			if nsErr := p.inNS(save); nsErr != nil {
				err = fmt.Errorf("reading rules: %s: %w", SaveCommand(j.family, j.backend), nsErr)
			}
		} else {
			save()
		}
		if err != nil {
			d.Error = err.Error()
			return
		}
		d.Raw = string(out)
		if d.Raw == "" {
			// iptables-legacy-save prints nothing when no table module
			// is loaded: an empty ruleset, not an error.
			d.Ruleset = &parse.Ruleset{Format: parse.FormatSave}
			return
		}
		rs, perr := parse.Parse(out)
		if perr != nil {
			d.Error = fmt.Sprintf("parsing %s output: %v", SaveCommand(j.family, j.backend), perr)
			return
		}
		d.Ruleset = rs
	}
	if p.serial {
		for i := range jobs {
			run(i)
		}
		return dumps
	}
	var wg sync.WaitGroup
	for i := range jobs {
		wg.Go(func() { run(i) })
	}
	wg.Wait()
	return dumps
}

// dockerChains are the chains whose presence says Docker programmed a
// backend (DOCKER-FORWARD: 28.0.1+).
var dockerChains = []parse.ChainName{"DOCKER", "DOCKER-USER", "DOCKER-FORWARD"}

// hasDockerChains reports whether a ruleset's nat or filter table declares
// one of Docker's chains.
func hasDockerChains(rs *parse.Ruleset) bool {
	for _, tn := range []parse.TableName{parse.TableNAT, parse.TableFilter} {
		t := rs.Table(tn)
		for _, c := range dockerChains {
			if t.Chain(c) != nil {
				return true
			}
		}
	}
	return false
}

// dockerBackend says which backend holds Docker's chains. Dumps taken with
// plain iptables-save (Backend "") count as pathBackend.
func dockerBackend(dumps []snapshot.RuleDump, pathBackend string) string {
	var nft, legacy bool
	for _, d := range dumps {
		if d.Ruleset == nil || !hasDockerChains(d.Ruleset) {
			continue
		}
		b := d.Backend
		if b == "" {
			b = pathBackend
		}
		switch b {
		case snapshot.BackendNFT:
			nft = true
		case snapshot.BackendLegacy:
			legacy = true
		}
	}
	switch {
	case nft && legacy:
		return snapshot.BackendBoth
	case nft:
		return snapshot.BackendNFT
	case legacy:
		return snapshot.BackendLegacy
	}
	return snapshot.BackendNone
}

// lookPath is exec.LookPath; a variable for tests.
var lookPath = exec.LookPath
