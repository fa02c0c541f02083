package parse

import (
	"fmt"
	"testing"
)

// mustRule parses a rule spec of filter INPUT or fails the test.
func mustRule(t *testing.T, spec string) *Rule {
	t.Helper()
	r, err := ParseRuleSpec(TableFilter, ChainInput, spec)
	if err != nil {
		t.Fatalf("ParseRuleSpec(%q): %v", spec, err)
	}
	return r
}

func TestProto(t *testing.T) {
	tests := []struct{ name, spec, want string }{
		{"a named protocol is kept", "-p tcp -j ACCEPT", "tcp"},
		{"upper case is lowered", "-p UDP -j ACCEPT", "udp"},
		{"6 is tcp", "-p 6 -j ACCEPT", "tcp"},
		{"17 is udp", "-p 17 -j ACCEPT", "udp"},
		{"132 is sctp", "-p 132 -j ACCEPT", "sctp"},
		{"1 is icmp", "-p 1 -j ACCEPT", "icmp"},
		{"58 is ipv6-icmp as ip6tables-save prints it", "-p 58 -j ACCEPT", "ipv6-icmp"},
		{"icmpv6 is ipv6-icmp", "-p icmpv6 -j ACCEPT", "ipv6-icmp"},
		{"all is any protocol", "-p all -j ACCEPT", ""},
		{"0 is any protocol", "-p 0 -j ACCEPT", ""},
		{"no -p is any protocol", "-j ACCEPT", ""},
		{"a negated protocol still gives its name", "! -p tcp -j ACCEPT", "tcp"},
		{"an unknown number is kept", "-p 253 -j ACCEPT", "253"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := mustRule(t, tt.spec).Proto(); got != tt.want {
				t.Errorf("Proto() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestPorts(t *testing.T) {
	tests := []struct {
		name, spec     string
		dst, src       string
		dstNeg, srcNeg bool
	}{
		{"tcp --dport gives one port", "-p tcp -m tcp --dport 8080 -j ACCEPT", "[8080]", "[]", false, false},
		{"an implicit udp match works", "-p udp --dport 53 --sport 1024:65535 -j ACCEPT", "[53]", "[1024:65535]", false, false},
		{"long option names work", "-p tcp -m tcp --destination-port 80 --source-port 22 -j ACCEPT", "[80]", "[22]", false, false},
		{"a negated dport is reported", "-p tcp -m tcp ! --dport 22 -j ACCEPT", "[22]", "[]", true, false},
		{"multiport lists and ranges", "-p tcp -m multiport --dports 80,443,7000:7002 -j ACCEPT", "[80 443 7000:7002]", "[]", false, false},
		{"multiport --ports counts both ways", "-p tcp -m multiport --ports 80,443 -j ACCEPT", "[80 443]", "[80 443]", false, false},
		{"multiport negated sports", "-p udp -m multiport ! --sports 1:1023 -j ACCEPT", "[]", "[1:1023]", false, true},
		{"sctp works", "-p sctp -m sctp --dport 3868 -j ACCEPT", "[3868]", "[]", false, false},
		{"open ranges reach the ends", "-p tcp -m tcp --dport 1024: --sport :1023 -j ACCEPT", "[1024:65535]", "[0:1023]", false, false},
		{"no ports is nil", "-p tcp -j ACCEPT", "[]", "[]", false, false},
		{"service names are skipped", "-p tcp -m multiport --dports http,443 -j ACCEPT", "[443]", "[]", false, false},
		{"a dport of another match is ignored", "-m foo --dport 80 -j ACCEPT", "[]", "[]", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := mustRule(t, tt.spec)
			dst, dneg := r.DestPorts()
			src, sneg := r.SourcePorts()
			if got := fmt.Sprint(dst); got != tt.dst || dneg != tt.dstNeg {
				t.Errorf("DestPorts() = %s, %v; want %s, %v", got, dneg, tt.dst, tt.dstNeg)
			}
			if got := fmt.Sprint(src); got != tt.src || sneg != tt.srcNeg {
				t.Errorf("SourcePorts() = %s, %v; want %s, %v", got, sneg, tt.src, tt.srcNeg)
			}
		})
	}
}

func TestMatchAccessors(t *testing.T) {
	r := mustRule(t, `! -s 127.0.0.0/8 -m addrtype ! --src-type LOCAL --dst-type LOCAL,UNICAST -m comment --comment "block incoming" -m conntrack ! --ctstate RELATED,ESTABLISHED --ctorigdst 10.0.0.5 --ctorigdstport 80 -m mark ! --mark 0x4000/0x4000 -m comment --comment second -j DROP`)
	src, dst := r.AddrType()
	tests := []struct {
		name string
		got  Negatable
		want string
	}{
		{"addrtype src type is negated LOCAL", src, "!LOCAL"},
		{"addrtype dst type keeps its list", dst, "LOCAL,UNICAST"},
		{"conntrack state is negated", r.CTState(), "!RELATED,ESTABLISHED"},
		{"conntrack original destination", r.CTOrigDst(), "10.0.0.5"},
		{"conntrack original destination port", r.CTOrigDstPort(), "80"},
		{"mark is negated", r.Mark(), "!0x4000/0x4000"},
		{"state --state works like conntrack", mustRule(t, "-m state --state NEW -j ACCEPT").CTState(), "NEW"},
		{"absent values are zero", mustRule(t, "-j ACCEPT").CTState(), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got.String() != tt.want {
				t.Errorf("got %q, want %q", tt.got.String(), tt.want)
			}
		})
	}
	t.Run("comments are joined by a space", func(t *testing.T) {
		if got := r.Comment(); got != "block incoming second" {
			t.Errorf("Comment() = %q", got)
		}
	})
}

func TestTargetAccessors(t *testing.T) {
	tests := []struct {
		name, spec, natTo, reject string
		masq                      bool
	}{
		{"DNAT gives its destination", "-p tcp -m tcp --dport 8080 -j DNAT --to-destination 172.17.0.2:80", "172.17.0.2:80", "", false},
		{"SNAT gives its source", "-j SNAT --to-source 192.0.2.1", "192.0.2.1", "", false},
		{"REDIRECT gives its ports", "-p tcp -j REDIRECT --to-ports 3128", "3128", "", false},
		{"MASQUERADE without ports gives nothing", "-j MASQUERADE --random-fully", "", "", true},
		{"MASQUERADE with ports", "-p tcp -j MASQUERADE --to-ports 1024-2048", "1024-2048", "", true},
		{"REJECT gives its reject-with", "-j REJECT --reject-with icmp-port-unreachable", "", "icmp-port-unreachable", false},
		{"ACCEPT gives nothing", "-j ACCEPT", "", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := mustRule(t, tt.spec)
			if got := r.NATTo(); got != tt.natTo {
				t.Errorf("NATTo() = %q, want %q", got, tt.natTo)
			}
			if got := r.RejectWith(); got != tt.reject {
				t.Errorf("RejectWith() = %q, want %q", got, tt.reject)
			}
			if got := r.IsMasquerade(); got != tt.masq {
				t.Errorf("IsMasquerade() = %v, want %v", got, tt.masq)
			}
		})
	}
}

func TestAccessorsOnANilRuleGiveZero(t *testing.T) {
	var r *Rule
	d, _ := r.DestPorts()
	s, _ := r.SourcePorts()
	a, b := r.AddrType()
	if r.Proto() != "" || d != nil || s != nil || !a.IsZero() || !b.IsZero() || !r.CTState().IsZero() ||
		!r.CTOrigDst().IsZero() || !r.CTOrigDstPort().IsZero() || r.Comment() != "" || !r.Mark().IsZero() ||
		r.NATTo() != "" || r.IsMasquerade() || r.RejectWith() != "" {
		t.Error("an accessor of a nil rule gave a value")
	}
}

func TestPortRangeString(t *testing.T) {
	if got := (PortRange{8080, 8080}).String(); got != "8080" {
		t.Errorf("one port = %q", got)
	}
	if got := (PortRange{7000, 7002}).String(); got != "7000:7002" {
		t.Errorf("range = %q", got)
	}
}

func TestParseNATDest(t *testing.T) {
	tests := []struct {
		in      string
		want    NATDest
		wantErr bool
	}{
		{"172.17.0.2:80", NATDest{"172.17.0.2", 80, 80}, false},
		{"[fd00::2]:80", NATDest{"fd00::2", 80, 80}, false},
		{"10.0.0.1-10.0.0.5:80-90", NATDest{"10.0.0.1-10.0.0.5", 80, 90}, false},
		{"172.17.0.2", NATDest{"172.17.0.2", 0, 0}, false},
		{"fd00::2", NATDest{"fd00::2", 0, 0}, false},
		{"[fd00::2]", NATDest{"fd00::2", 0, 0}, false},
		{":8080", NATDest{"", 8080, 8080}, false},
		{"", NATDest{}, true},
		{"172.17.0.2:0", NATDest{}, true},
		{"172.17.0.2:90-80", NATDest{}, true},
		{"172.17.0.2:70000", NATDest{}, true},
		{"10.0.0.5-10.0.0.1", NATDest{}, true},
		{"10.0.0.1-fd00::1", NATDest{}, true},
		{"[fd00::2", NATDest{}, true},
		{"[fd00::2]80", NATDest{}, true},
		{"host:80", NATDest{}, true},
	}
	for _, tt := range tests {
		name := fmt.Sprintf("%q parses to %+v", tt.in, tt.want)
		if tt.wantErr {
			name = fmt.Sprintf("%q is an error", tt.in)
		}
		t.Run(name, func(t *testing.T) {
			got, err := ParseNATDest(tt.in)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("ParseNATDest(%q) = %+v, %v", tt.in, got, err)
			}
		})
	}
}

func TestCanonicalAddr(t *testing.T) {
	tests := []struct{ in, want string }{
		{"172.17.0.2", "172.17.0.2/32"},
		{"172.17.0.2/32", "172.17.0.2/32"},
		{"172.17.0.0/16", "172.17.0.0/16"},
		{"0.0.0.0/0", ""},
		{"::/0", ""},
		{"fd00::1", "fd00::1/128"},
		{"fd00::/64", "fd00::/64"},
		{"10.0.0.0/255.0.255.0", "10.0.0.0/255.0.255.0"},
		{"example.com", "example.com"},
		{"", ""},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%q becomes %q", tt.in, tt.want), func(t *testing.T) {
			if got := CanonicalAddr(tt.in); got != tt.want {
				t.Errorf("CanonicalAddr(%q) = %q", tt.in, got)
			}
		})
	}
}
