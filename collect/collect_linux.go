//go:build linux

package collect

import (
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"sync"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/iptscope/iptscope/snapshot"
)

// Collect reads the live host into a snapshot. It never fails as a whole:
// a part that cannot be read (no Docker, no br_netfilter, no legacy tools,
// not root) is recorded in Snapshot.Errors (and in RuleDump.Error or
// Docker.Error for those parts) and everything else is still read.
//
// iptables dumps, netlink and sysctls, docker-proxy scanning and the
// Docker API run concurrently; the iptables dumps of both backends and
// families run at once, so the whole takes about as long as the slowest
// iptables-save.
func Collect(ctx context.Context, o Options) *snapshot.Snapshot {
	s := emptySnapshot()
	r := o.Runner
	if r == nil {
		r = ExecRunner{Env: o.Env}
	}
	var mu sync.Mutex // guards s.Errors and Progress
	fail := func(part string, err error) {
		mu.Lock()
		s.AddError(part, err)
		mu.Unlock()
	}
	progress := func(step string) {
		if o.Progress != nil {
			mu.Lock()
			o.Progress(step)
			mu.Unlock()
		}
	}

	s.Host.Hostname, _ = os.Hostname()
	var uts unix.Utsname
	if unix.Uname(&uts) == nil {
		s.Host.KernelRelease = unix.ByteSliceToString(uts.Release[:])
	}
	t, err := resolveNetNS(o.NetNS)
	s.Host.NetNS, s.Host.NetNSPath, s.Host.NetNSInode = o.NetNS, t.path, t.inode
	s.Host.AllProcesses = inInitialPIDNS()
	if err != nil {
		// Nothing namespace-bound can be read; the Docker API still can.
		fail("netns", needsRoot(err))
	}
	var inNS func(func() error) error
	if t.other {
		inNS = func(f func() error) error { return inNetNS(t.path, f) }
	}
	if os.Geteuid() != 0 {
		fail("privileges", fmt.Errorf("not running as root: iptables-save, other namespaces and other users' docker-proxy processes %w; reading what is readable", ErrNeedsRoot))
	}

	dockerHost := o.DockerHost
	if dockerHost == "" {
		dockerHost = os.Getenv("DOCKER_HOST")
	}
	if dockerHost == "" {
		dockerHost = DefaultDockerHost
	}

	var wg sync.WaitGroup
	nsOK := err == nil

	if nsOK {
		wg.Go(func() {
			progress("iptables")
			var backendErr error
			s.IptablesBackend, backendErr = iptablesBackend(ctx, r)
			fail("iptables", backendErr)
			plan := rulesPlan{backends: planBackends(lookPath), inNS: inNS, legacyTables: legacyTableNames}
			if _, live := r.(ExecRunner); live {
				plan.nftRead = nftSave
			}
			s.Rules = collectRules(ctx, r, plan)
			for _, d := range s.Rules {
				if d.Error != "" {
					fail("iptables "+d.Backend+" "+d.Family, fmt.Errorf("%s", d.Error))
				}
			}
			s.DockerBackend = dockerBackend(s.Rules, s.IptablesBackend)
		})
		wg.Go(func() {
			progress("nftables")
			if s.Nftables = CollectNftables(ctx, r, inNS, t.path); s.Nftables.Error != "" {
				fail("nftables", fmt.Errorf("%s", s.Nftables.Error))
			}
		})
		if _, err := lookPath("ipset"); err == nil {
			// The sets `-m set` rules match (trace); nil, not an
			// error, on a host without the ipset tool.
			wg.Go(func() {
				var out []byte
				var runErr error
				read := func() error {
					out, runErr = r.Run(ctx, "ipset", []string{"save"}, nil)
					return nil
				}
				var err error
				if inNS != nil {
					err = inNS(read)
				} else {
					err = read()
				}
				if err == nil {
					err = runErr
				}
				if err == nil {
					s.IPSets, err = ParseIPSetSave(out)
				}
				if err != nil {
					fail("ipset", fmt.Errorf("reading ipsets: %w", needsRoot(err)))
				}
			})
		}
	}

	var hostLinks map[int]snapshot.Link
	netDone := make(chan struct{})
	if nsOK {
		wg.Go(func() {
			defer close(netDone)
			progress("netlink")
			h, err := netHandle(t)
			if err != nil {
				fail("netlink", err)
			} else {
				st := readNetState(h, !t.other)
				h.Close()
				s.Links, s.Addrs, s.Routes, s.Neighbors = orEmpty(st.links), orEmpty(st.addrs), orEmpty(st.routes), orEmpty(st.neighbors)
				for _, e := range st.errs {
					fail("netlink", e)
				}
			}
			hostLinks = map[int]snapshot.Link{}
			var bridges, uplinks []string
			for _, l := range s.Links {
				hostLinks[l.Index] = l
				switch {
				case l.Kind == "bridge":
					bridges = append(bridges, l.Name)
				case l.Master == "" && l.Name != "lo":
					// Not a bridge port (containers' veths are).
					uplinks = append(uplinks, l.Name)
				}
			}
			progress("sysctls")
			var sys map[string]snapshot.Sysctl
			read := func() error {
				var err error
				sys, err = readSysctls(sysctlNames(bridges, uplinks))
				return err
			}
			if inNS != nil {
				err = inNS(read)
			} else {
				err = read()
			}
			if sys != nil {
				s.Sysctls = sys
			}
			fail("sysctl", err)
		})

		wg.Go(func() {
			progress("docker-proxy")
			ps, err := readProxies("/proc", t.inode)
			s.Proxies = orEmpty(ps)
			fail("proxies", err)
			ds, err := readDaemons("/proc", t.inode)
			s.Daemons = orEmpty(ds)
			fail("daemon", err)
		})
	} else {
		close(netDone)
	}

	wg.Go(func() {
		progress("docker")
		d := collectDocker(ctx, dockerHost)
		<-netDone
		if d.Error == "" || len(d.Containers) > 0 {
			progress("veths")
			for i := range d.Containers {
				findHostVeths(&d.Containers[i], hostLinks)
			}
		}
		s.Docker = d
		if d.Error != "" {
			fail("docker", fmt.Errorf("%s", d.Error))
		}
	})
	wg.Wait()
	return s
}

// findHostVeths fills each endpoint's HostVeth: in the container's
// namespace (its SandboxKey, else /proc/PID/ns/net) it finds the interface
// holding the endpoint address; a veth's IFLA_LINK is its peer's ifindex,
// which must be a veth in the host namespace pointing back at it.
//
//	container ns: eth0 (idx 12, link 13) ──veth── host ns: vethab12 (idx 13, link 12)
func findHostVeths(ct *snapshot.Container, hostLinks map[int]snapshot.Link) {
	if !ct.Running || len(ct.Endpoints) == 0 || hostLinks == nil {
		return
	}
	path := ct.SandboxKey
	if _, err := os.Stat(path); path == "" || err != nil {
		if ct.Pid == 0 {
			return
		}
		path = "/proc/" + strconv.Itoa(ct.Pid) + "/ns/net"
	}
	nsh, err := netns.GetFromPath(path)
	if err != nil {
		ct.Error = joinErr(ct.Error, fmt.Sprintf("opening sandbox %s: %v", path, needsRoot(err)))
		return
	}
	defer nsh.Close()
	h, err := netlink.NewHandleAt(nsh)
	if err != nil {
		ct.Error = joinErr(ct.Error, fmt.Sprintf("netlink in sandbox %s: %v", path, needsRoot(err)))
		return
	}
	defer h.Close()
	links, err := retryDump(h.LinkList)
	if err != nil {
		ct.Error = joinErr(ct.Error, fmt.Sprintf("listing links in sandbox %s: %v", path, err))
		return
	}
	addrs, err := retryDump(func() ([]netlink.Addr, error) { return h.AddrList(nil, netlink.FAMILY_ALL) })
	if err != nil {
		ct.Error = joinErr(ct.Error, fmt.Sprintf("listing addresses in sandbox %s: %v", path, err))
		return
	}
	byIndex := map[int]netlink.Link{}
	for _, l := range links {
		byIndex[l.Attrs().Index] = l
	}
	for i := range ct.Endpoints {
		ep := &ct.Endpoints[i]
		for _, a := range addrs {
			if !(a.IP.Equal(net.ParseIP(ep.IP)) || (ep.IPv6 != "" && a.IP.Equal(net.ParseIP(ep.IPv6)))) {
				continue
			}
			l, ok := byIndex[a.LinkIndex].(*netlink.Veth)
			if !ok {
				continue
			}
			peer, ok := hostLinks[l.Attrs().ParentIndex]
			if ok && peer.Kind == "veth" && peer.PeerIndex == l.Attrs().Index {
				ep.HostVeth, ep.HostVethIndex = peer.Name, peer.Index
			}
			break
		}
	}
}
