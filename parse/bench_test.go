package parse_test

import (
	"io"
	"testing"

	"github.com/iptscope/iptscope/internal/synth"
	"github.com/iptscope/iptscope/parse"
)

// Benchmarks over the synthetic hosts of internal/synth, the sizes the
// issue asks about: a Docker 28 host with 33,000 published ports (~100k
// rules, the shape real iptables-save prints) and a kube-proxy node with
// 5,000 services of 5 endpoints (~85k rules).
//
//	go test ./parse -run XXX -bench 'Synth' -benchmem -count 6 | tee new.txt; benchstat old.txt new.txt
func benchParse(b *testing.B, data []byte, parseFn func([]byte) (*parse.Ruleset, error)) {
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	b.ResetTimer()
	// Go 1.26.8 crashes compiling some b.Loop bodies: keep b.N.
	for i := 0; i < b.N; i++ {
		if _, err := parseFn(data); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSynthDocker100kSave(b *testing.B) {
	benchParse(b, synth.DockerHost(33000), parse.ParseSave)
}

func BenchmarkSynthKube85kSave(b *testing.B) {
	benchParse(b, synth.KubeNode(5000, 5), parse.ParseSave)
}

// BenchmarkSynthDocker100kList parses the same Docker host as
// `iptables -L -n -v` text (generated from the model).
func BenchmarkSynthDocker100kList(b *testing.B) {
	rs, err := parse.ParseSave(synth.DockerHost(33000))
	if err != nil {
		b.Fatal(err)
	}
	benchParse(b, synth.ListText(rs), parse.ParseList)
}

// BenchmarkSynthDocker100kWriteSave prints the parsed dump back (what
// `dump -o save` does with an unfiltered save input: the stored lines).
func BenchmarkSynthDocker100kWriteSave(b *testing.B) {
	rs, err := parse.ParseSave(synth.DockerHost(33000))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := rs.WriteSave(io.Discard); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSynthDocker100kWriteSaveFromModel generates save text from the
// model (what `dump -o save` does with -L input or a -t/--chain filter).
func BenchmarkSynthDocker100kWriteSaveFromModel(b *testing.B) {
	rs, err := parse.ParseSave(synth.DockerHost(33000))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, t := range rs.Tables {
			if err := t.WriteSave(io.Discard, true); err != nil {
				b.Fatal(err)
			}
		}
	}
}
