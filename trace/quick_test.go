package trace

import (
	"math/rand/v2"
	"net/netip"
	"strconv"
	"testing"

	"github.com/iptscope/iptscope/snapshot"
)

// TestQuickAddrIsNetipPrefix: a quick test's compact prefix contains
// exactly what netip.Prefix.Contains says, for IPv4 and IPv6 prefixes of
// every length, near and far addresses of both families.
func TestQuickAddrIsNetipPrefix(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	addr := func(v4 bool) netip.Addr {
		var b [16]byte
		for i := range b {
			b[i] = byte(r.IntN(256))
		}
		if v4 {
			return netip.AddrFrom4([4]byte(b[:4]))
		}
		return netip.AddrFrom16(b)
	}
	n := 0
	for range 20000 {
		v4 := r.IntN(2) == 0
		a := addr(v4)
		p := netip.PrefixFrom(a, r.IntN(a.BitLen()+1))
		q := quickAddrOfPrefix(p)
		if q.prefix() != p {
			t.Fatalf("%s comes back as %s", p, q.prefix())
		}
		if q.single() != p.IsSingleIP() {
			t.Fatalf("%s: single %v", p, q.single())
		}
		for _, x := range []netip.Addr{addr(v4), addr(!v4), a, a.Next(), a.Prev(), netip.AddrFrom16(a.As16()), {}} {
			if got, want := q.contains(x), p.Contains(x); got != want {
				t.Fatalf("%s contains %s: %v, netip says %v", p, x, got, want)
			}
			n++
		}
	}
	t.Logf("%d pairs", n)
}

// TestDockerNetworkOfIsTheFirstSubnetThatHoldsTheAddress: the indexed
// lookup gives what a walk over the subnets in order gives, overlapping
// subnets of both families included.
func TestDockerNetworkOfIsTheFirstSubnetThatHoldsTheAddress(t *testing.T) {
	s := &snapshot.Snapshot{Docker: &snapshot.Docker{}}
	subnets := [][]string{{"172.17.0.0/16"}, {"172.18.0.0/16", "fd00:1::/64"}, {"172.18.5.0/24"}, {"10.0.0.0/8"}, {"10.1.2.0/24", "fd00::/48"}, {"0.0.0.0/0"}}
	for i, sub := range subnets {
		s.Docker.Networks = append(s.Docker.Networks, snapshot.Network{Name: "n" + strconv.Itoa(i), BridgeName: "br" + strconv.Itoa(i), Subnets: sub})
	}
	e := &engine{Tracer: New(s)}
	walk := func(a netip.Addr) *snapshot.Network {
		for _, np := range e.netPrefixes {
			if np.p.Contains(a) {
				return np.n
			}
		}
		return nil
	}
	for _, x := range []string{"172.17.3.4", "172.18.5.9", "172.18.6.1", "10.1.2.3", "10.9.9.9", "192.0.2.1", "fd00:1::5", "fd00::1", "fd00:2::1", "2001:db8::1", "::ffff:10.1.2.3"} {
		a := netip.MustParseAddr(x)
		if got, want := e.dockerNetworkOf(a), walk(a); got != want {
			t.Errorf("%s: %v, the walk says %v", x, got, want)
		}
	}
}
