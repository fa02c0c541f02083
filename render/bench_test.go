package render_test

import (
	"io"
	"testing"

	"github.com/iptscope/iptscope/internal/synth"
	"github.com/iptscope/iptscope/parse"
	"github.com/iptscope/iptscope/render"
)

// Benchmarks of every renderer of `iptscope dump` and `iptscope graph` over
// the synthetic Docker host with 33,000 published ports (~100k rules), the
// size issue 9 asks about. Output goes to io.Discard: the benchmarks
// measure building the text, not a terminal.
//
//	go test ./render -run XXX -bench . -benchmem -count 6 | tee new.txt; benchstat old.txt new.txt
func docker100k(b *testing.B) []*parse.Table {
	b.Helper()
	rs, err := parse.ParseSave(synth.DockerHost(33000))
	if err != nil {
		b.Fatal(err)
	}
	return rs.Tables
}

func benchRender(b *testing.B, fn func(io.Writer, []*parse.Table) error) {
	tables := docker100k(b)
	b.ReportAllocs()
	b.ResetTimer()
	// Go 1.26.8 crashes compiling some b.Loop bodies: keep b.N.
	for i := 0; i < b.N; i++ {
		if err := fn(io.Discard, tables); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDocker100kRulesTable(b *testing.B) {
	benchRender(b, func(w io.Writer, t []*parse.Table) error { return render.RulesTable(w, t, "", render.Options{}) })
}

func BenchmarkDocker100kRulesTableTerminal(b *testing.B) {
	benchRender(b, func(w io.Writer, t []*parse.Table) error {
		return render.RulesTable(w, t, "", render.Options{Terminal: true})
	})
}

func BenchmarkDocker100kRulesJSON(b *testing.B) {
	benchRender(b, func(w io.Writer, t []*parse.Table) error { return render.RulesJSON(w, parse.FormatSave, t) })
}

func BenchmarkDocker100kTree(b *testing.B) {
	benchRender(b, func(w io.Writer, t []*parse.Table) error { return render.Tree(w, t, render.Options{}) })
}

func BenchmarkDocker100kDOT(b *testing.B) { benchRender(b, render.DOT) }

func BenchmarkDocker100kMermaid(b *testing.B) { benchRender(b, render.Mermaid) }

func BenchmarkDocker100kGraphJSON(b *testing.B) { benchRender(b, render.GraphJSON) }

// BenchmarkKube85kTree renders the tree of a kube-proxy node with 5,000
// services of 5 endpoints (~85k rules, ~30k chains): every jump looks its
// chain up, which must not scan the table's chains.
func BenchmarkKube85kTree(b *testing.B) {
	rs, err := parse.ParseSave(synth.KubeNode(5000, 5))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := render.Tree(io.Discard, rs.Tables, render.Options{}); err != nil {
			b.Fatal(err)
		}
	}
}

func benchKube(b *testing.B, fn func(io.Writer, []*parse.Table) error) {
	rs, err := parse.ParseSave(synth.KubeNode(5000, 5))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := fn(io.Discard, rs.Tables); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkKube85kDOT(b *testing.B) { benchKube(b, render.DOT) }

func BenchmarkKube85kMermaid(b *testing.B) { benchKube(b, render.Mermaid) }

func BenchmarkKube85kGraphJSON(b *testing.B) { benchKube(b, render.GraphJSON) }
