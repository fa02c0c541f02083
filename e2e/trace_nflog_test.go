package e2e

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// nflogTrace reads the kernel's trace of legacy iptables: ip_tables logs
// every rule, chain end and policy a packet with nf_trace meets through
// nf_log ("TRACE: table:chain:rule|return|policy:N"). In a network
// namespace other than the first, the default IPv4 logger (nf_log_syslog)
// keeps quiet unless the global nf_log_all_netns is set; the namespace's
// own sysctl net.netfilter.nf_log.2=nfnetlink_log sends them to
// nfnetlink_log instead, group 0, which this reads over netlink inside
// the namespace. The packet is the IP header on (copy mode packet), from
// which the test tells its packets apart.
type nflogTrace struct {
	mu   sync.Mutex
	msgs []nflogMsg
	last string // what the last packet's wait read, for failure messages
	conn *netlink.Conn
	err  error // the receive loop's end
}

// nflogMsg is one NFULNL_MSG_PACKET: the prefix and the packet.
type nflogMsg struct {
	prefix   string
	hook     uint8
	src, dst netip.Addr
	id       uint16 // the IP ID
	proto    uint8
	dport    uint16
}

func (m nflogMsg) String() string {
	return fmt.Sprintf("%s(hook %d %s -> %s:%d id %d)", m.prefix, m.hook, m.src, m.dst, m.dport, m.id)
}

// nfnetlink_log's message types and attributes (linux/netfilter/nfnetlink_log.h).
const (
	nfnlSubsysULOG     = 4
	nfulnlMsgPacket    = 0
	nfulnlMsgConfig    = 1
	nfulaCfgCmd        = 1
	nfulaCfgMode       = 2
	nfulaCfgQthresh    = 4
	nfulaCfgTimeout    = 3
	nfulnlCfgCmdBind   = 1
	nfulnlCopyPacket   = 2
	nfulaPacketHdr     = 1
	nfulaPayload       = 9
	nfulaPrefix        = 10
	nflogTraceCopySize = 128 // the IP and TCP headers
)

// startNflogTrace sets nf_log.2=nfnetlink_log inside netns (a path such as
// /var/run/netns/NAME; never the first namespace) and reads group 0.
func startNflogTrace(t *testing.T, netns string) *nflogTrace {
	t.Helper()
	f, err := os.Open(netns)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if out, err := runIn(netns, "sysctl", "-qw", "net.netfilter.nf_log.2=nfnetlink_log"); err != nil {
		t.Fatalf("sysctl net.netfilter.nf_log.2=nfnetlink_log inside %s: %v: %s", netns, err, out)
	}
	conn, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: int(f.Fd())})
	if err != nil {
		t.Fatalf("netlink inside %s: %v", netns, err)
	}
	if err := conn.SetReadBuffer(8 << 20); err != nil {
		t.Logf("netlink read buffer: %v", err)
	}
	k := &nflogTrace{conn: conn}
	config := func(what string, attrs func(ae *netlink.AttributeEncoder)) {
		t.Helper()
		ae := netlink.NewAttributeEncoder()
		attrs(ae)
		data, err := ae.Encode()
		if err != nil {
			t.Fatal(err)
		}
		// nfgenmsg: family AF_UNSPEC, version 0, res_id the group (0).
		msg := netlink.Message{
			Header: netlink.Header{Type: netlink.HeaderType(nfnlSubsysULOG<<8 | nfulnlMsgConfig), Flags: netlink.Request | netlink.Acknowledge},
			Data:   append([]byte{unix.AF_UNSPEC, 0, 0, 0}, data...),
		}
		if _, err := conn.Execute(msg); err != nil {
			t.Fatalf("nfnetlink_log %s: %v", what, err)
		}
	}
	config("bind group 0", func(ae *netlink.AttributeEncoder) { ae.Bytes(nfulaCfgCmd, []byte{nfulnlCfgCmdBind}) })
	config("copy mode", func(ae *netlink.AttributeEncoder) {
		mode := make([]byte, 6) // struct nfulnl_msg_config_mode: __be32 copy_range, __u8 copy_mode, pad
		binary.BigEndian.PutUint32(mode, nflogTraceCopySize)
		mode[4] = nfulnlCopyPacket
		ae.Bytes(nfulaCfgMode, mode)
	})
	// One message per netlink datagram, at once (the default batches up
	// to 100 for a second).
	config("queue threshold", func(ae *netlink.AttributeEncoder) {
		ae.Bytes(nfulaCfgQthresh, binary.BigEndian.AppendUint32(nil, 1))
		ae.Bytes(nfulaCfgTimeout, binary.BigEndian.AppendUint32(nil, 0))
	})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			msgs, err := conn.Receive()
			if err != nil {
				k.mu.Lock()
				k.err = err
				k.mu.Unlock()
				return
			}
			for _, m := range msgs {
				if m.Header.Type != netlink.HeaderType(nfnlSubsysULOG<<8|nfulnlMsgPacket) || len(m.Data) < 4 {
					continue
				}
				if pm, ok := parseNflogPacket(m.Data[4:]); ok {
					k.mu.Lock()
					k.msgs = append(k.msgs, pm)
					k.mu.Unlock()
				}
			}
		}
	}()
	t.Cleanup(func() {
		_ = conn.Close()
		<-done
		// Back to the namespace's default (the namespace goes with the
		// test anyway).
		_, _ = runIn(netns, "sysctl", "-qw", "net.netfilter.nf_log.2=NONE")
	})
	return k
}

// runIn runs a command inside a network namespace.
func runIn(netns string, args ...string) ([]byte, error) {
	return exec.Command("nsenter", append([]string{"--net=" + netns}, args...)...).CombinedOutput()
}

// parseNflogPacket reads the attributes of one NFULNL_MSG_PACKET.
func parseNflogPacket(b []byte) (nflogMsg, bool) {
	ad, err := netlink.NewAttributeDecoder(b)
	if err != nil {
		return nflogMsg{}, false
	}
	var m nflogMsg
	var payload []byte
	for ad.Next() {
		switch ad.Type() {
		case nfulaPrefix:
			m.prefix = strings.TrimRight(ad.String(), "\x00 ")
		case nfulaPacketHdr:
			if h := ad.Bytes(); len(h) >= 3 {
				m.hook = h[2]
			}
		case nfulaPayload:
			payload = ad.Bytes()
		}
	}
	if ad.Err() != nil || len(payload) < 20 || payload[0]>>4 != 4 {
		return nflogMsg{}, false
	}
	ihl := int(payload[0]&0xf) * 4
	m.id = binary.BigEndian.Uint16(payload[4:6])
	m.proto = payload[9]
	m.src, _ = netip.AddrFromSlice(payload[12:16])
	m.dst, _ = netip.AddrFromSlice(payload[16:20])
	if (m.proto == unix.IPPROTO_TCP || m.proto == unix.IPPROTO_UDP) && len(payload) >= ihl+4 {
		m.dport = binary.BigEndian.Uint16(payload[ihl+2 : ihl+4])
	}
	return m, true
}

// nflogPrefix is ip_tables' trace prefix: "TRACE: raw:PREROUTING:policy:3".
var nflogPrefix = regexp.MustCompile(`^TRACE: ([^:]+):([^:]+):(rule|return|policy):(\d+)$`)

// nflogEvent is one line of a legacy trace: the rule's position in its
// chain (ip_tables counts a user chain's rules from 1 as well; a chain's
// end, "return" or "policy", is one past its last rule).
type nflogEvent struct {
	table, chain, kind string
	n                  int
}

// parseNflog picks the events of the first packet from src to dst:port
// (its IP ID and source follow it through DNAT; the source is the
// original one until POSTROUTING has run, and MASQUERADE's rewrite comes
// after the chain's rules were logged).
func parseNflog(msgs []nflogMsg, src, dst string, port int) ([]nflogEvent, bool) {
	var evs []nflogEvent
	var want nflogMsg
	found := false
	type key struct {
		src netip.Addr
		id  uint16
	}
	seen := map[key]bool{}
	for _, m := range msgs {
		if k := (key{m.src, m.id}); !seen[k] {
			// A packet is known by its first header: after a DNAT,
			// another packet may look like this one.
			seen[k] = true
			if !found && m.src.String() == src && m.dst.String() == dst && int(m.dport) == port && m.proto == unix.IPPROTO_TCP {
				want, found = m, true
			}
		}
		if !found || m.src != want.src || m.id != want.id || m.proto != want.proto {
			continue
		}
		p := nflogPrefix.FindStringSubmatch(m.prefix)
		if p == nil {
			continue
		}
		n, _ := strconv.Atoi(p[4])
		evs = append(evs, nflogEvent{table: p[1], chain: p[2], kind: p[3], n: n})
	}
	return evs, found
}

// packet waits for the trace of the first packet from src to dst:port
// seen since the last call.
func (k *nflogTrace) packet(t *testing.T, src, dst string, port int) []nflogEvent {
	t.Helper()
	evs := k.find(t, src, dst, port)
	k.reset()
	return evs
}

// reset forgets the messages read so far.
func (k *nflogTrace) reset() {
	k.mu.Lock()
	k.msgs = nil
	k.mu.Unlock()
}

// find waits for the trace of the first packet from src to dst:port seen
// since the last reset (packets sent together are found one by one).
func (k *nflogTrace) find(t *testing.T, src, dst string, port int) []nflogEvent {
	t.Helper()
	var evs []nflogEvent
	prev, same := -1, 0
	ok := waitUntil(t, fmt.Sprintf("the kernel's legacy trace of a SYN to %s:%d", dst, port), 30*time.Second, func() bool {
		k.mu.Lock()
		msgs := k.msgs
		k.mu.Unlock()
		var found bool
		evs, found = parseNflog(msgs, src, dst, port)
		// Complete when two reads 200 ms apart see the same events.
		if found && len(evs) == prev {
			same++
		} else {
			same = 0
		}
		prev = len(evs)
		return found && same >= 2
	})
	k.mu.Lock()
	var b strings.Builder
	for _, m := range k.msgs {
		fmt.Fprintln(&b, m)
	}
	if k.err != nil {
		fmt.Fprintf(&b, "(the reader stopped: %v)\n", k.err)
	}
	k.last = b.String()
	k.mu.Unlock()
	if !ok {
		t.Fatalf("no legacy kernel trace for %s:%d; nfnetlink_log delivered:\n%s", dst, port, k.last)
	}
	return evs
}

// nflogEvents are the rules and policies met, "table chain rule N" and
// "table chain policy N"; chain ends ("return") are left out, as the
// other differentials leave them out.
func nflogEvents(evs []nflogEvent) []string {
	var out []string
	for _, e := range evs {
		if e.kind == "return" {
			continue
		}
		out = append(out, fmt.Sprintf("%s %s %s %d", e.table, e.chain, e.kind, e.n))
	}
	return out
}

// findKey is the legacy trace of the packet the other monitor found
// ("source/IP ID"); none when legacy iptables did not see it (a drop or
// a NAT binding before any legacy chain, or none registered), after a
// second of quiet.
func (k *nflogTrace) findKey(t *testing.T, key string) []nflogEvent {
	t.Helper()
	src, id, _ := strings.Cut(key, "/")
	a, _ := netip.ParseAddr(src)
	n, _ := strconv.Atoi(id)
	var evs []nflogEvent
	prev, same := -1, 0
	waitUntil(t, "the legacy trace of packet "+key, 10*time.Second, func() bool {
		k.mu.Lock()
		evs = evs[:0]
		for _, m := range k.msgs {
			if m.src != a || int(m.id) != n {
				continue
			}
			if p := nflogPrefix.FindStringSubmatch(m.prefix); p != nil {
				pos, _ := strconv.Atoi(p[4])
				evs = append(evs, nflogEvent{table: p[1], chain: p[2], kind: p[3], n: pos})
			}
		}
		k.mu.Unlock()
		if len(evs) == prev {
			same++
		} else {
			same = 0
		}
		prev = len(evs)
		return same >= 5
	})
	return evs
}
