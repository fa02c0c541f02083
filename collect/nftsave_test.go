package collect

import (
	"errors"
	"net/netip"
	"testing"
)

// TestV6TextIsInetNtop: the IPv6 forms the reader prints are inet_ntop's
// (what iptables prints); the one where netip differs is refused.
func TestV6TextIsInetNtop(t *testing.T) {
	for in, want := range map[string]string{
		"fd00::2":               "fd00::2",
		"::":                    "::",
		"::1":                   "::1",
		"::ffff:10.1.2.3":       "::ffff:10.1.2.3",
		"2001:db8:0:1:0:0:0:1":  "2001:db8:0:1::1",
		"2001:db8:0:0:1:0:0:1":  "2001:db8::1:0:0:1",
		"fe80:0:0:0:0:0:0:0":    "fe80::",
		"2001:db8:1:2:3:4:5:6":  "2001:db8:1:2:3:4:5:6",
		"2001:0:0:1:0:0:0:1234": "2001:0:0:1::1234",
	} {
		got, ok := v6Text(netip.MustParseAddr(in).As16())
		if !ok || got != want {
			t.Errorf("%s: got %q, %v; want %q", in, got, ok, want)
		}
	}
	// inet_ntop prints ::10.1.2.3, netip ::a01:203.
	if got, ok := v6Text(netip.MustParseAddr("::10.1.2.3").As16()); ok {
		t.Errorf("::10.1.2.3: printed %q, want a refusal", got)
	}
}

// TestAppendRuleRefusesMalformedMessages: a truncated or odd message is an
// error, never a panic or a line.
func TestAppendRuleRefusesMalformedMessages(t *testing.T) {
	for name, attrs := range map[string][]byte{
		"attribute longer than the message": {0x20, 0, 4, 0, 1, 2},
		"expression list of another type":   {12, 0, 4, 0x80, 8, 0, 9, 0, 0, 0, 0, 0},
		"no counter":                        {},
	} {
		out, err := appendRule(nil, attrs, false)
		if err == nil {
			t.Errorf("%s: no error, printed %q", name, out)
		}
	}
	if _, err := appendRule(nil, nil, false); !errors.Is(err, errNftSaveUnknown) {
		t.Errorf("an empty rule: %v, want errNftSaveUnknown", err)
	}
}

// FuzzAppendRule: whatever a rule message holds, appendRule returns a
// line or an error, and never panics.
func FuzzAppendRule(f *testing.F) {
	f.Add([]byte{}, false)
	f.Add([]byte{0x20, 0, 4, 0, 1, 2}, true)
	f.Add([]byte{12, 0, 4, 0x80, 8, 0, 1, 0x80, 4, 0, 1, 0}, false)
	f.Fuzz(func(t *testing.T, attrs []byte, v6 bool) {
		appendRule(nil, attrs, v6)
	})
}
