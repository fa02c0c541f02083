package trace

import (
	"math/rand/v2"
	"net/netip"
	"testing"
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
