package trace

import (
	"fmt"
	"net/netip"
	"strings"
	"sync"

	"github.com/iptscope/iptscope/snapshot"
)

// PortPath is how a connection from another machine fares on a published
// port, in the words of the ports table (diagnose.PortPath has the same
// values).
type PortPath string

// Port paths.
const (
	// PortNAT: the connection is forwarded to the publishing container,
	// which answers on the port it publishes.
	PortNAT PortPath = "nat"
	// PortProxyOnly: the connection is delivered to the host, where a
	// docker-proxy relays it (the container sees the host as the client).
	PortProxyOnly PortPath = "proxy-only"
	// PortBroken: it is dropped, rejected, goes elsewhere or nothing
	// answers it.
	PortBroken PortPath = "broken"
	// PortLocalOnly: the port is bound to a loopback address; other
	// machines cannot reach it by design.
	PortLocalOnly PortPath = "local-only"
	// PortUnknown: the engine cannot follow the packet (the trace says
	// why), or the snapshot gives no address another machine would use.
	PortUnknown PortPath = "unknown"
)

// PortVerdict is the engine's judgement of one published port: the path a
// connection from another machine takes and the trace behind it.
type PortVerdict struct {
	Container     string   `json:"container"`
	HostIP        string   `json:"host_ip"` // as Docker reports it: "0.0.0.0", "::", "127.0.0.1"
	HostPort      int      `json:"host_port"`
	Proto         string   `json:"proto"`
	ContainerPort int      `json:"container_port"`
	Path          PortPath `json:"path"`
	// Reason says in one sentence why (the trace's reason, or why there
	// is no trace).
	Reason string `json:"reason"`
	// Trace is the SYN from another machine, traced (nil for local-only
	// ports and when no client address could be chosen). Its Deciding
	// step is the rule that stops the packet, when one does.
	Trace *Result `json:"trace,omitempty"`
}

// Deciding is the step that decided a broken (or unknown) path, or nil.
func (v PortVerdict) Deciding() *Step {
	if v.Trace == nil || v.Path == PortNAT || v.Path == PortProxyOnly {
		return nil
	}
	return v.Trace.Deciding()
}

// Ports judges every published port of every running container of s, in
// the snapshot's container order then binding order (see Tracer.Ports).
func Ports(s *snapshot.Snapshot) []PortVerdict { return New(s).Ports() }

// Ports judges every published port of every running container: a TCP
// (or UDP) SYN from another machine on the uplink (see OutsideClient) to
// the binding's address (the uplink's for 0.0.0.0 and ::) and host port,
// traced through the snapshot. It is what the ports table needs: the path
// and, for a broken one, the deciding rule (PortVerdict.Deciding). A
// binding of a family the host has no uplink address of is unknown with
// the reason; loopback bindings are local-only and not traced.
func (t *Tracer) Ports() []PortVerdict {
	var out []PortVerdict
	t.EachPort(func(v PortVerdict) { out = append(out, v) })
	return out
}

// EachPort is Ports one verdict at a time, in the same order: a caller
// that keeps only what it needs of each trace lets the rest go (33,000
// traces held at once were tens of megabytes).
func (t *Tracer) EachPort(yield func(PortVerdict)) { t.eachPort(false, yield) }

// ScanPorts is EachPort with one Result reused for every trace: a
// verdict's Trace is valid only until yield returns (a caller that keeps
// a few words of each trace does not pay for thousands of them), and it
// is lean: the same verdict, reason and steps, but only a rule's step has
// a text (no text for a kernel decision, a chain's end or a policy, no
// note of a rewrite, Names only for the reason's addresses).
func (t *Tracer) ScanPorts(yield func(PortVerdict)) { t.eachPort(true, yield) }

// ScanPortsParallel is ScanPorts over up to workers goroutines: yield
// gets each verdict with its index in EachPort's order, is called
// concurrently from the workers (never twice for one index), and a
// verdict's Trace is valid only until yield returns. A Tracer is safe for
// concurrent traces; the ports of a big host are traced in a fraction of
// the time on a machine with more than one core.
func (t *Tracer) ScanPortsParallel(workers int, yield func(i int, v PortVerdict)) {
	items := t.portItems()
	t.prepare()
	clients := map[bool]*outside{true: outsideClient(t.net, true), false: outsideClient(t.net, false)}
	workers = max(1, min(workers, len(items)/256))
	var wg sync.WaitGroup
	chunk := (len(items) + workers - 1) / workers
	for w := 0; w < workers; w++ {
		lo, hi := w*chunk, min(len(items), (w+1)*chunk)
		if lo >= hi {
			break
		}
		wg.Go(func() {
			res := &Result{Names: map[string]string{}, Steps: make([]Step, 0, 32), lean: true}
			for i := lo; i < hi; i++ {
				yield(i, t.portVerdict(items[i], clients, res))
			}
		})
	}
	wg.Wait()
}

// portItem is one published port to trace.
type portItem struct {
	c *snapshot.Container
	b *snapshot.PortBinding
}

// portItems are the bindings EachPort judges, in its order.
func (t *Tracer) portItems() []portItem {
	if t.snap.Docker == nil {
		return nil
	}
	var out []portItem
	for ci := range t.snap.Docker.Containers {
		c := &t.snap.Docker.Containers[ci]
		if !c.Running {
			continue
		}
		for bi := range c.Ports {
			if c.Ports[bi].HostPort > 0 {
				out = append(out, portItem{c, &c.Ports[bi]})
			}
		}
	}
	return out
}

func (t *Tracer) eachPort(reuse bool, yield func(PortVerdict)) {
	var res *Result
	if reuse {
		res = &Result{Names: map[string]string{}, Steps: make([]Step, 0, 32), lean: true}
	}
	clients := map[bool]*outside{}
	for _, it := range t.portItems() {
		yield(t.portVerdict(it, clients, res))
	}
}

// portVerdict traces one binding (into res when it is not nil). clients
// holds the outside client of each family, made on first use.
func (t *Tracer) portVerdict(it portItem, clients map[bool]*outside, res *Result) PortVerdict {
	c, b := it.c, it.b
	proto := strings.ToLower(b.Proto)
	if proto == "" {
		proto = "tcp"
	}
	v := PortVerdict{Container: c.Name, HostIP: b.HostIP, HostPort: b.HostPort, Proto: proto, ContainerPort: b.ContainerPort}
	host := b.HostIP
	if host == "" {
		host = "0.0.0.0"
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		v.Path, v.Reason = PortUnknown, fmt.Sprintf("host address %q is not an address", b.HostIP)
		return v
	}
	a = a.Unmap()
	if a.IsLoopback() {
		v.Path, v.Reason = PortLocalOnly, fmt.Sprintf("bound to %s: other machines cannot reach it by design", a)
		return v
	}
	cl, ok := clients[a.Is4()]
	if !ok {
		cl = outsideClient(t.net, a.Is4())
		clients[a.Is4()] = cl
	}
	if cl.why != "" {
		v.Path, v.Reason = PortUnknown, cl.why
		return v
	}
	dst := a
	if a.IsUnspecified() {
		dst = cl.dst
	}
	if proto != "tcp" && proto != "udp" {
		v.Path, v.Reason = PortUnknown, fmt.Sprintf("protocol %s: the tracer follows tcp and udp packets", proto)
		return v
	}
	r := t.trace(Packet{Proto: proto, Src: cl.src, SrcPort: 40000, Dst: dst, DstPort: uint16(b.HostPort), InIface: cl.in, State: StateNew}, res)
	v.Trace, v.Path, v.Reason = r, pathOf(r, c.Name), r.Reason
	if v.Path == PortUnknown && r.Verdict == Accept && translatedAway(r, c, b) {
		// Why: the connection is translated to another address (or
		// port) than the binding's: whatever is there, the publishing
		// container's port does not get it.
		v.Path = PortBroken
		v.Reason = fmt.Sprintf("translated to %s, not to %s's port %d: %s", netip.AddrPortFrom(r.Final.Dst, r.Final.DstPort), c.Name, b.ContainerPort, r.Reason)
	}
	return v
}

// translatedAway reports whether a published port's trace was translated
// to an address that is not the container's, or to another port of it.
func translatedAway(r *Result, c *snapshot.Container, b *snapshot.PortBinding) bool {
	if r.Final.Dst == r.Packet.Dst && r.Final.DstPort == r.Packet.DstPort {
		return false
	}
	for _, ep := range c.Endpoints {
		for _, a := range []string{ep.IP, ep.IPv6} {
			if x, err := netip.ParseAddr(a); err == nil && x.Unmap() == r.Final.Dst {
				return int(r.Final.DstPort) != b.ContainerPort
			}
		}
	}
	return true
}

// pathOf reads a trace of a published port of container as a port path.
func pathOf(r *Result, container string) PortPath {
	switch {
	case r.Verdict == Unknown || r.Reaches == ReachUnknown:
		return PortUnknown
	case r.Verdict != Accept || r.Answers == nil || !*r.Answers:
		if r.Answers == nil && r.Verdict == Accept {
			return PortUnknown
		}
		return PortBroken
	case r.Reaches == ReachContainer && r.Container == container:
		return PortNAT
	case r.Reaches == ReachHost && strings.HasPrefix(r.AnsweredBy, "docker-proxy"):
		return PortProxyOnly
	}
	return PortBroken
}

// outside is the client Ports traces from.
type outside struct {
	src, dst netip.Addr
	in       string
	why      string // set when there is none
}

// OutsideClient is where Ports sends its packets from for a family: the
// host's uplink (the interface of the default route; without one, the
// first interface with an address of the family that is neither loopback
// nor a bridge nor a bridge's port), its first address (the destination
// for ports published on 0.0.0.0 or ::) and, as the source, the first
// other address of that link's prefix (a neighbour; the gateway of the
// default route when there is one). ok is false, with why, when the
// snapshot has no such interface.
func OutsideClient(s *snapshot.Snapshot, v4 bool) (src, dst netip.Addr, in string, ok bool, why string) {
	cl := outsideClient(newNetView(s), v4)
	return cl.src, cl.dst, cl.in, cl.why == "", cl.why
}

func outsideClient(v *netView, v4 bool) *outside {
	fam := "IPv6"
	if v4 {
		fam = "IPv4"
	}
	if !v.known {
		return &outside{why: "the input has no addresses or routes (a raw dump): no address of the host to send to"}
	}
	pick := func(link string) (netip.Prefix, bool) {
		for _, p := range v.addrsOf[link] {
			if p.Addr().Is4() == v4 && !p.Addr().IsLoopback() && !p.Addr().IsLinkLocalUnicast() {
				return p, true
			}
		}
		return netip.Prefix{}, false
	}
	var gw netip.Addr
	link := ""
	for _, r := range v.routes {
		if r.dst.Bits() == 0 && r.dst.Addr().Is4() == v4 && r.dev != "" {
			if _, ok := pick(r.dev); ok {
				link = r.dev
				gw, _ = netip.ParseAddr(r.gw)
				break
			}
		}
	}
	if link == "" {
		// Why sorted by name: map order is random, and the same snapshot
		// must give the same client.
		var names []string
		for name := range v.addrsOf {
			l, known := v.links[name]
			if name == "lo" || known && (l.Kind == "bridge" || l.Master != "") {
				continue
			}
			if _, ok := pick(name); ok {
				names = append(names, name)
			}
		}
		if len(names) == 0 {
			return &outside{why: fmt.Sprintf("the host has no %s address on an uplink (only loopback and bridges): no address another machine would connect to", fam)}
		}
		link = names[0]
		for _, n := range names[1:] {
			if n < link {
				link = n
			}
		}
	}
	p, _ := pick(link)
	cl := &outside{dst: p.Addr(), in: link}
	if gw.IsValid() && gw.Is4() == v4 && !v.isLocal(gw) {
		cl.src = gw.Unmap()
		return cl
	}
	for a := p.Masked().Addr(); p.Contains(a); a = a.Next() {
		if a == p.Masked().Addr() && p.Bits() < p.Addr().BitLen()-1 {
			continue // the network address
		}
		if !v.isLocal(a) && !v.broadcasts[a] {
			cl.src = a
			return cl
		}
	}
	return &outside{why: fmt.Sprintf("%s's prefix %s has no address for another machine", link, p)}
}
