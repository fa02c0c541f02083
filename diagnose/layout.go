package diagnose

import (
	"fmt"

	"github.com/iptscope/iptscope/parse"
)

// Layout is one era of the firewall rules Docker writes, as data: the
// versions that write it, with which firewall backend, Docker's own
// chains, the chains that identify it in a dump, and the builder of its
// expected rules. Every version-dependent decision of Expect and of the
// rule-only inference starts from this table (docker-facts.md §1–2).
//
//	era            versions          backend    own filter chains
//	classic        20.10 – 27.x      iptables   DOCKER, DOCKER-ISOLATION-STAGE-1/2, DOCKER-USER
//	28.0.0-ipset   28.0.0            iptables   (not modelled)
//	28             28.0.1 – 28.x     iptables   DOCKER, DOCKER-BRIDGE, DOCKER-CT, DOCKER-FORWARD, DOCKER-ISOLATION-STAGE-1/2, DOCKER-USER
//	29             29.x              iptables   DOCKER, DOCKER-BRIDGE, DOCKER-CT, DOCKER-FORWARD, DOCKER-INTERNAL, DOCKER-USER
//	29-nftables    29.x              nftables   (nft tables ip/ip6 docker-bridges)
//
// A version newer than the newest era (Docker 30) is judged with the
// newest layout of its backend, and Expect says so as an assumption:
// never silently as if it were known.
type Layout struct {
	Era Era
	// Backend is the firewall backend the layout is written with:
	// BackendIPTables or BackendNftables.
	Backend string
	// From is the first version that writes it; Until the first that no
	// longer does (zero: the newest era, open-ended).
	From, Until Version
	// Chains are Docker's own chains per table (IPv4; a builder may drop
	// one a version or family lacks, e.g. 20.10's IPv6 DOCKER-USER).
	Chains map[parse.TableName][]parse.ChainName
	// Signature: a dump holding this chain of the filter table was written
	// by this layout (checked newest first; nil for none).
	Signature []parse.ChainName
	// Sample is a version of the era a rule-only diagnosis takes when the
	// chains show the era but not the version.
	Sample string
	// build adds the layout's expected rules (nil: not modelled).
	build func(b *builder, nets []*bridgeNet, ports []port)
}

// Firewall backends a layout is written with.
const (
	BackendIPTables = "iptables"
	BackendNftables = "nftables"
)

// Modelled reports whether iptscope derives the layout's expected rules.
func (l Layout) Modelled() bool { return l.build != nil }

// Covers reports whether version v writes this layout.
func (l Layout) Covers(v Version) bool {
	return v.AtLeast(l.From.Major, l.From.Minor, l.From.Patch) &&
		(l.Until == (Version{}) || !v.AtLeast(l.Until.Major, l.Until.Minor, l.Until.Patch))
}

var (
	classicFilter = []parse.ChainName{ChainDocker, ChainIsolation1, ChainIsolation2, ChainDockerUser}
	filter28      = []parse.ChainName{ChainDocker, ChainDockerBridge, ChainDockerCT, ChainDockerFwd, ChainIsolation1, ChainIsolation2, ChainDockerUser}
	filter29      = []parse.ChainName{ChainDocker, ChainDockerBridge, ChainDockerCT, ChainDockerFwd, ChainDockerIntern, ChainDockerUser}
	natOwn        = []parse.ChainName{ChainDocker}
)

// layouts, oldest first.
var layouts = []Layout{
	{Era: EraClassic, Backend: BackendIPTables, From: Version{20, 10, 0}, Until: Version{28, 0, 0}, Sample: "20.10.0",
		Chains: map[parse.TableName][]parse.ChainName{parse.TableNAT: natOwn, parse.TableFilter: classicFilter},
		build:  expectClassic},
	{Era: Era2800, Backend: BackendIPTables, From: Version{28, 0, 0}, Until: Version{28, 0, 1}, Sample: "28.0.0"},
	{Era: Era28, Backend: BackendIPTables, From: Version{28, 0, 1}, Until: Version{29, 0, 0}, Sample: "28.2.2",
		Chains:    map[parse.TableName][]parse.ChainName{parse.TableNAT: natOwn, parse.TableFilter: filter28},
		Signature: []parse.ChainName{ChainDockerFwd}, build: expect28},
	{Era: Era29, Backend: BackendIPTables, From: Version{29, 0, 0}, Sample: "29.0.0",
		Chains:    map[parse.TableName][]parse.ChainName{parse.TableNAT: natOwn, parse.TableFilter: filter29},
		Signature: []parse.ChainName{ChainDockerIntern}, build: expect28},
	{Era: Era29Nftables, Backend: BackendNftables, From: Version{29, 0, 0}, Sample: "29.0.0"},
}

// Layouts returns the table of layouts, oldest first.
func Layouts() []Layout { return append([]Layout(nil), layouts...) }

// LayoutFor returns the layout version v writes with backend, and a note
// when that is an assumption: a version newer than every era is judged
// with the newest layout of its backend. ok is false for a version older
// than every era (before 20.10) or an unknown backend.
func LayoutFor(v Version, backend string) (l Layout, assumed string, ok bool) {
	var newest *Layout
	for i := range layouts {
		x := &layouts[i]
		if x.Backend != backend {
			continue
		}
		if x.Covers(v) {
			l = *x
			ok = true
		}
		newest = x
	}
	if ok && newest != nil && l.Era == newest.Era && v.Major > newest.From.Major {
		// Why: moby changes its rules with each major version (28 and 29
		// each did); a newer daemon may write what no era here describes.
		assumed = fmt.Sprintf("Docker %s is newer than every layout iptscope knows: judged with the %s layout of Docker %d, an assumption (a finding may be a change of Docker's, not a fault)",
			v, newest.Era, newest.From.Major)
	}
	return l, assumed, ok
}
