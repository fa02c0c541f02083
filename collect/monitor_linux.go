//go:build linux

package collect

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/iptscope/iptscope/parse"
	"github.com/iptscope/iptscope/snapshot"
	"github.com/iptscope/iptscope/watch"
)

// monitorBuffer is how many generations the nftables monitor queues
// before the netlink reader waits for us.
const monitorBuffer = 16

// monitorReadBuffer is the netlink socket's receive buffer. Why this
// big: every rule of a flushed chain is one message holding the whole
// rule, and the kernel queues them all before watch reads the first. A
// flush of the 33,000 DNATs of nat DOCKER on a 100,000-rule host
// overflowed 8 MiB (ENOBUFS: the events are lost and watch must read
// everything again, 30 s of CPU there). The memory is the kernel's, and
// only while a burst is queued. As root it is set with SO_RCVBUFFORCE,
// past net.core.rmem_max; otherwise SO_RCVBUF caps it at rmem_max.
const monitorReadBuffer = 128 << 20

// maxWhat caps the descriptions of one generation's changes (a restore
// of 100,000 rules touches hundreds of chains).
const maxWhat = 8

// WatchNftables streams the nftables ruleset changes of the namespace
// named as Options.NetNS names it: one Change per generation (a commit of
// iptables-nft, nft or dockerd), with the generation ID, the process that
// made it (the kernel's NFTA_GEN_PROC_PID and _NAME, plus the parent's
// name when the process is still there to ask) and what changed per
// chain. Both iptables-nft's tables and native ones (Docker 29's
// docker-bridges) are covered: they are all nftables.
//
// When the kernel drops events of a huge burst (ENOBUFS) it subscribes
// again at once and sends a Change without a process: something changed
// that was not seen. Other netlink failures send a Change with Err first,
// then retry every second. The
// channel is closed when ctx is done, after the netlink socket is closed
// and its reader has ended.
func WatchNftables(ctx context.Context, o Options) (<-chan watch.Change, error) {
	t, err := resolveNetNS(o.NetNS)
	if err != nil {
		return nil, needsRoot(err)
	}
	open := func() (*nftables.Monitor, chan *nftables.MonitorEvents, error) {
		fd, err := unix.Open(t.path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, nil, fmt.Errorf("opening network namespace %s: %w", t.path, needsRoot(err))
		}
		// The netlink socket is created in the namespace of fd (setns on a
		// locked thread inside the library); it stays bound to it.
		// Why a big receive buffer: a restore of a 100,000-rule ruleset is
		// one burst of 100,000 messages; with the default buffer the
		// kernel drops some (ENOBUFS) and watch must re-read everything.
		conn, err := nftables.New(nftables.WithNetNSFd(fd), nftables.WithSockOptions(func(c *netlink.Conn) error {
			if raw, err := c.SyscallConn(); err == nil {
				var serr error
				if err := raw.Control(func(fd uintptr) {
					serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, monitorReadBuffer)
				}); err == nil && serr == nil {
					return nil
				}
			}
			_ = c.SetReadBuffer(monitorReadBuffer)
			return nil
		}))
		if err != nil {
			unix.Close(fd)
			return nil, nil, fmt.Errorf("nftables netlink: %w", err)
		}
		mon := nftables.NewMonitor(nftables.WithMonitorEventBuffer(monitorBuffer))
		ch, err := conn.AddGenerationalMonitor(mon)
		unix.Close(fd)
		if err != nil {
			return nil, nil, fmt.Errorf("subscribing to nftables events in %s: %w", t.path, needsRoot(err))
		}
		return mon, ch, nil
	}
	mon, ch, err := open()
	if err != nil {
		return nil, err
	}
	out := make(chan watch.Change, 1)
	go func() {
		defer close(out)
		send := func(c watch.Change) bool {
			select {
			case out <- c:
				return true
			case <-ctx.Done():
				return false
			}
		}
		for {
			stopped := pumpGenerations(ctx, ch, send)
			// The library's reader ends once the socket is closed; drain
			// what it still sends so that it never blocks (no goroutine
			// is left behind).
			_ = mon.Close()
			for range ch {
			}
			if stopped || ctx.Err() != nil {
				return
			}
			for wait := time.Duration(0); ; wait = time.Second {
				select {
				case <-ctx.Done():
					return
				case <-time.After(wait):
				}
				if mon, ch, err = open(); err == nil {
					break
				}
				if !send(watch.Change{Time: time.Now(), Source: "nftables", Err: err}) {
					return
				}
			}
			if !send(watch.Change{Time: time.Now(), Source: "nftables", What: []string{"events lost (a burst overflowed the netlink buffer): re-reading the host"}}) {
				return
			}
		}
	}()
	return out, nil
}

// pumpGenerations turns the library's generations into Changes until ctx
// is done (stopped true) or the monitor fails (stopped false, after the
// error was sent).
func pumpGenerations(ctx context.Context, ch chan *nftables.MonitorEvents, send func(watch.Change) bool) (stopped bool) {
	for {
		select {
		case <-ctx.Done():
			return true
		case evs, ok := <-ch:
			if !ok {
				return false
			}
			if evs.GeneratedBy != nil && evs.GeneratedBy.Error != nil && evs.GeneratedBy.Type == nftables.MonitorEventTypeOOB {
				if errors.Is(evs.GeneratedBy.Error, unix.ENOBUFS) {
					// The kernel dropped events of a burst: not a failure,
					// but the host must be read again (after the
					// re-subscription).
					return false
				}
				send(watch.Change{Time: time.Now(), Source: "nftables", Err: fmt.Errorf("netlink: %w", evs.GeneratedBy.Error)})
				return false
			}
			if !send(generationChange(evs)) {
				return true
			}
		}
	}
}

// generationChange describes one generation.
func generationChange(evs *nftables.MonitorEvents) watch.Change {
	c := watch.Change{Time: time.Now(), Source: "nftables"}
	if evs.GeneratedBy != nil {
		if g, ok := evs.GeneratedBy.Data.(*nftables.GenMsg); ok && g != nil {
			c.Generation = g.ID
			c.By = processOf(int(g.ProcPID), g.ProcComm)
		}
	}
	c.What = describeChanges(evs.Changes)
	c.RulesOnly, c.Chains = scopeOf(evs.Changes)
	return c
}

// iptablesNftTables are the tables whose chains watch re-reads one by
// one (with iptables-nft -S CHAIN); a change anywhere else (security,
// arp, bridge, a native table such as Docker 29's docker-bridges) makes
// a full read.
var iptablesNftTables = map[string]bool{"filter": true, "nat": true, "raw": true, "mangle": true}

// nftFamilies maps the families of iptables-nft's tables to the
// snapshot's names of them.
var nftFamilies = map[nftables.TableFamily]string{
	nftables.TableFamilyIPv4: snapshot.FamilyIPv4,
	nftables.TableFamilyIPv6: snapshot.FamilyIPv6,
}

// scopeOf says whether a generation only changed rules of chains of
// iptables-nft's tables (rules added, deleted or replaced: iptables -A,
// -I, -D, -R, -F) or the policy or counters of their built-in chains
// (iptables -P and -Z make a "new chain" message for an existing
// built-in chain), and which chains. Anything else (a table or a user
// chain added or deleted, a built-in chain deleted, a set, an object, a
// message the library could not decode, an empty generation) gives
// rulesOnly false: a full read.
func scopeOf(evs []*nftables.MonitorEvent) (rulesOnly bool, chains []watch.ChainRef) {
	if len(evs) == 0 {
		return false, nil
	}
	for _, e := range evs {
		var fam nftables.TableFamily
		var table, chain string
		switch d := e.Data.(type) {
		case *nftables.Rule:
			// An expression the library cannot decode leaves Error set:
			// the table and chain are all this needs.
			if d == nil || d.Table == nil || d.Chain == nil || (e.Type != nftables.MonitorEventTypeNewRule && e.Type != nftables.MonitorEventTypeDelRule) {
				return false, nil
			}
			fam, table, chain = d.Table.Family, d.Table.Name, d.Chain.Name
		case *nftables.Chain:
			if d == nil || d.Table == nil || e.Error != nil || e.Type != nftables.MonitorEventTypeNewChain ||
				!parse.ChainName(d.Name).IsBuiltin(parse.TableName(d.Table.Name)) {
				return false, nil
			}
			// A built-in chain that did not exist yet is caught by the
			// re-read: the last snapshot has no such chain.
			fam, table, chain = d.Table.Family, d.Table.Name, d.Name
		default:
			return false, nil
		}
		f, ok := nftFamilies[fam]
		if !ok || !iptablesNftTables[table] || chain == "" {
			return false, nil
		}
		ref := watch.ChainRef{Family: f, Table: table, Chain: chain}
		if !slices.Contains(chains, ref) {
			chains = append(chains, ref)
		}
	}
	return true, chains
}

// processOf fills the parent of pid from /proc when it is still running.
// Why: dockerd runs iptables (and, for Docker 29's nftables backend, its
// own netlink or nft); the child is named "iptables" like an admin's, and
// only its parent says it is Docker's.
func processOf(pid int, comm string) watch.Process {
	p := watch.Process{PID: pid, Comm: comm}
	if pid <= 0 {
		return p
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return p
	}
	// "PID (COMM) STATE PPID ...": COMM may hold spaces and parentheses.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return p
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 2 {
		return p
	}
	if pp, err := strconv.Atoi(f[1]); err == nil {
		p.PPID = pp
		if c, err := os.ReadFile("/proc/" + f[1] + "/comm"); err == nil {
			p.ParentComm = strings.TrimSpace(string(c))
		}
	}
	return p
}

var nftFamilyName = map[nftables.TableFamily]string{
	nftables.TableFamilyIPv4:   "ip",
	nftables.TableFamilyIPv6:   "ip6",
	nftables.TableFamilyINet:   "inet",
	nftables.TableFamilyARP:    "arp",
	nftables.TableFamilyBridge: "bridge",
	nftables.TableFamilyNetdev: "netdev",
}

// describeChanges counts one generation's changes per chain: "ip nat
// DOCKER: 3 rules deleted", "ip filter DOCKER-USER: chain deleted",
// "ip6 docker-bridges: table added"; at most maxWhat lines, then "...".
func describeChanges(evs []*nftables.MonitorEvent) []string {
	type key struct{ where, what string }
	n := map[key]int{}
	var order []key
	add := func(k key) {
		if n[k] == 0 {
			order = append(order, k)
		}
		n[k]++
	}
	for _, e := range evs {
		switch d := e.Data.(type) {
		case *nftables.Rule:
			if d == nil || d.Table == nil || d.Chain == nil {
				continue
			}
			where := nftFamilyName[d.Table.Family] + " " + d.Table.Name + " " + d.Chain.Name
			if e.Type == nftables.MonitorEventTypeDelRule {
				add(key{where, "deleted"})
			} else {
				add(key{where, "added"})
			}
		case *nftables.Chain:
			if d == nil || d.Table == nil {
				continue
			}
			where := nftFamilyName[d.Table.Family] + " " + d.Table.Name + " " + d.Name
			if e.Type == nftables.MonitorEventTypeDelChain {
				add(key{where, "chain deleted"})
			} else {
				add(key{where, "chain added"})
			}
		case *nftables.Table:
			if d == nil {
				continue
			}
			where := nftFamilyName[d.Family] + " " + d.Name
			if e.Type == nftables.MonitorEventTypeDelTable {
				add(key{where, "table deleted"})
			} else {
				add(key{where, "table added"})
			}
		case *nftables.Set:
			if d == nil || d.Table == nil {
				continue
			}
			where := nftFamilyName[d.Table.Family] + " " + d.Table.Name + " " + d.Name
			if e.Type == nftables.MonitorEventTypeDelSet {
				add(key{where, "set deleted"})
			} else {
				add(key{where, "set added"})
			}
		case []nftables.SetElement:
			// The library keeps neither the table nor the set of an
			// element: the element's key and verdict say which it is
			// (`element "docker0" : jump filter-forward-in__docker0`).
			what := "added"
			if e.Type == nftables.MonitorEventTypeDelSetElem {
				what = "deleted"
			}
			for _, el := range d {
				add(key{"element " + elementText(el), "element " + what})
			}
		}
	}
	// Deletions first: they are what breaks traffic.
	sort.SliceStable(order, func(i, j int) bool {
		return strings.HasSuffix(order[i].what, "deleted") && !strings.HasSuffix(order[j].what, "deleted")
	})
	var out []string
	for i, k := range order {
		if i == maxWhat {
			out = append(out, fmt.Sprintf("... %d more", len(order)-maxWhat))
			break
		}
		switch k.what {
		case "deleted", "added":
			out = append(out, fmt.Sprintf("%s: %d rule%s %s", k.where, n[k], plural(n[k]), k.what))
		case "element deleted", "element added":
			out = append(out, k.where+" "+strings.TrimPrefix(k.what, "element "))
		default:
			out = append(out, k.where+": "+k.what)
		}
	}
	return out
}

// elementText renders a set element for people: its key as a string when
// it is one (an interface name, NUL-padded), else in hex, then its
// verdict for a verdict map: `"docker0" : jump filter-forward-in__docker0`.
func elementText(el nftables.SetElement) string {
	k := strings.TrimRight(string(el.Key), "\x00")
	s := fmt.Sprintf("%x", el.Key)
	if k != "" && strings.IndexFunc(k, func(r rune) bool { return r < 0x20 || r > 0x7e }) < 0 {
		s = strconv.Quote(k)
	}
	if v := el.VerdictData; v != nil && v.Chain != "" {
		switch v.Kind {
		case expr.VerdictGoto:
			s += " : goto " + v.Chain
		default:
			s += " : jump " + v.Chain
		}
	}
	return s
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}
