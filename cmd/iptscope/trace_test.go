package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestTraceGoldens pins the text of a few traces over real captures and
// their exit codes (0 through, 1 stopped or unanswered, 2 unknown).
func TestTraceGoldens(t *testing.T) {
	const fx = "../../fixtures/"
	for _, c := range []struct {
		name string
		args []string
		code int
	}{
		{"published-port", []string{"--from", fx + "docker-28.5-nft-proxy-off-healthy/bundle.json", "--src", "198.18.205.2", "--dst", "198.18.205.1", "--dport", "8080"}, 0},
		{"stale-dnat", []string{"--from", fx + "docker-28.5-nft-proxy-off-stale-dnat/bundle.json", "--src", "198.18.205.2", "--dst", "198.18.205.1", "--dport", "8080"}, 1},
		{"proxy-after-flush", []string{"--from", fx + "docker-20.10-nft-proxy-on-nat-docker-flushed/bundle.json", "--src", "198.18.200.2", "--dst", "198.18.200.1", "--dport", "8080"}, 0},
		{"host-loopback", []string{"--from", fx + "docker-29-legacy-proxy-off-healthy/bundle.json", "--src", "127.0.0.1", "--dst", "127.0.0.1", "--dport", "9090"}, 0},
		{"other-network", []string{"--from", fx + "docker-28.5-legacy-proxy-on-healthy/bundle.json", "--src", "172.18.0.2", "--dst", "172.17.0.2", "--dport", "80"}, 1},
		{"nftables-user-table-drop", []string{"--from", fx + "docker-29-nftables-proxy-off-nft-user-table-drop/bundle.json", "--src", "198.18.217.2", "--dst", "198.18.217.1", "--dport", "8080"}, 1},
		{"nftables-published-port", []string{"--from", fx + "docker-29-nftables-proxy-on-healthy/bundle.json", "--src", "198.18.216.2", "--dst", "198.18.216.1", "--dport", "8081"}, 0},
		{"raw-dump", []string{"--from", fx + "docker-28.5-nft-proxy-off-healthy/iptables-save.txt", "--src", "198.51.100.7", "--in", "eth0", "--dst", "198.51.100.1", "--dport", "8080"}, 2},
	} {
		t.Run(c.name, func(t *testing.T) {
			out, errOut, code := iptscope(t, "", append([]string{"trace"}, c.args...)...)
			if code != c.code {
				t.Errorf("exit %d, want %d: %s", code, c.code, errOut)
			}
			golden := filepath.Join("testdata", "trace", c.name+".txt")
			if *update {
				if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(golden, []byte(out), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(string(want), out); d != "" {
				t.Errorf("output differs from %s (-want +got):\n%s", golden, d)
			}
		})
	}
}

func TestTraceRefusesBadPackets(t *testing.T) {
	b := "../../fixtures/docker-28.5-nft-proxy-off-healthy/bundle.json"
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--from", b, "--dst", "1.2.3.4", "--dport", "80"}, "needs --src"},
		{[]string{"--from", b, "--src", "x", "--dst", "1.2.3.4", "--dport", "80"}, "not an address"},
		{[]string{"--from", b, "--src", "1.2.3.4", "--dst", "fd00::1", "--dport", "80"}, "different families"},
		{[]string{"--from", b, "--src", "1.2.3.4", "--dst", "1.2.3.5", "--dport", "70000"}, "1 to 65535"},
		{[]string{"--from", b, "--src", "1.2.3.4", "--dst", "1.2.3.5", "--dport", "80", "--proto", "icmp"}, "tcp or udp"},
		{[]string{"--from", b, "--src", "1.2.3.4", "--dst", "1.2.3.5", "--dport", "80", "--state", "related"}, "new or established"},
		{[]string{"--from", b, "--src", "1.2.3.4", "--dst", "1.2.3.5", "--dport", "80"}, "no route back to 1.2.3.4"},
		{[]string{"--from", b, "--netns", "x", "--src", "1.2.3.4", "--dst", "1.2.3.5", "--dport", "80"}, "do not apply with --from"},
	} {
		_, errOut, code := iptscope(t, "", append([]string{"trace"}, c.args...)...)
		if code != 2 || !strings.Contains(errOut, c.want) {
			t.Errorf("%v: exit %d, %q; want 2 and %q", c.args, code, errOut, c.want)
		}
	}
}
