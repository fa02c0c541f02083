package collect

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/api/types/system"

	"github.com/iptscope/iptscope/snapshot"
)

// DefaultDockerHost is the endpoint used when neither Options.DockerHost
// nor DOCKER_HOST is set.
const DefaultDockerHost = "unix:///var/run/docker.sock"

// ourAPIVersion is the newest Engine API version whose types we decode
// (github.com/moby/moby/api v1.56.1). The moby types were checked to
// decode real 20.10 (API 1.41) and 28.5 (API 1.51) JSON: see the fixtures
// test in docker_test.go.
const ourAPIVersion = "1.56"

// dockerTimeout bounds every API call.
const dockerTimeout = 5 * time.Second

// dockerClient talks to the Engine API with plain net/http (no SDK: the
// SDK drags in half of moby and negotiates versions its own way).
type dockerClient struct {
	host    string // as given, for messages
	base    string // http://docker or http://HOST:PORT
	hc      *http.Client
	version string // negotiated, "" before ping
}

func newDockerClient(host string) (*dockerClient, error) {
	u, err := url.Parse(host)
	if err != nil {
		return nil, fmt.Errorf("docker host %q: %w", host, err)
	}
	tr := &http.Transport{DisableCompression: true}
	c := &dockerClient{host: host, hc: &http.Client{Transport: tr}}
	switch u.Scheme {
	case "unix":
		path := u.Path
		tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		}
		c.base = "http://docker"
	case "tcp", "http":
		c.base = "http://" + u.Host
	default:
		return nil, fmt.Errorf("docker host %q: unsupported scheme %q (want unix:// or tcp://; TLS is not supported)", host, u.Scheme)
	}
	return c, nil
}

// get fetches path (prefixed with the negotiated /vX.Y) and decodes JSON
// into v. It returns the response headers.
func (c *dockerClient) get(ctx context.Context, path string, v any) (http.Header, error) {
	ctx, cancel := context.WithTimeout(ctx, dockerTimeout)
	defer cancel()
	if c.version != "" {
		path = "/v" + c.version + path
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return nil, fmt.Errorf("GET %s: reading body: %w", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct{ Message string }
		_ = json.Unmarshal(body, &e)
		msg := e.Message
		if msg == "" {
			msg = strings.TrimSpace(string(body))
		}
		return nil, fmt.Errorf("GET %s: %s: %s", path, resp.Status, msg)
	}
	if v != nil {
		if err := json.Unmarshal(body, v); err != nil {
			return nil, fmt.Errorf("GET %s: decoding: %w", path, err)
		}
	}
	return resp.Header, nil
}

// parseAPIVersion reads "1.41" into comparable numbers.
func parseAPIVersion(s string) (major, minor int, ok bool) {
	a, b, found := strings.Cut(s, ".")
	if !found {
		return 0, 0, false
	}
	x, err1 := strconv.Atoi(a)
	y, err2 := strconv.Atoi(b)
	return x, y, err1 == nil && err2 == nil
}

// minAPIVersion is the older of two API versions; an unparsable server
// version yields ours.
func minAPIVersion(server, ours string) string {
	sx, sy, ok := parseAPIVersion(server)
	if !ok {
		return ours
	}
	ox, oy, _ := parseAPIVersion(ours)
	if sx < ox || (sx == ox && sy < oy) {
		return server
	}
	return ours
}

// collectDocker reads the daemon at host. It never fails: errors land in
// Docker.Error (the first fatal one) and in the containers' Error.
func collectDocker(ctx context.Context, host string) *snapshot.Docker {
	d := &snapshot.Docker{Host: host, Networks: []snapshot.Network{}, Containers: []snapshot.Container{}}
	c, err := newDockerClient(host)
	if err != nil {
		d.Error = err.Error()
		return d
	}
	// Negotiate: /_ping answers on every version without a prefix and
	// says the server's newest API version in the API-Version header.
	h, err := c.get(ctx, "/_ping", nil)
	if err != nil {
		d.Error = fmt.Sprintf("docker API not reachable at %s: %v", host, dockerHint(err))
		return d
	}
	c.version = minAPIVersion(h.Get("API-Version"), ourAPIVersion)
	d.APIVersion = c.version

	var errs []error
	var ver system.VersionResponse
	if _, err := c.get(ctx, "/version", &ver); err != nil {
		errs = append(errs, err)
	}
	d.Version = ver.Version

	var info system.Info
	var raw map[string]json.RawMessage
	if _, err := c.get(ctx, "/info", &raw); err != nil {
		errs = append(errs, err)
	} else {
		b, _ := json.Marshal(raw)
		if err := json.Unmarshal(b, &info); err != nil {
			errs = append(errs, fmt.Errorf("GET /info: decoding: %w", err))
		}
		d.Info = dockerInfo(&info, raw)
		if d.Version == "" {
			d.Version = info.ServerVersion
		}
	}

	var nets []network.Summary
	if _, err := c.get(ctx, "/networks", &nets); err != nil {
		errs = append(errs, err)
	}
	for _, n := range nets {
		d.Networks = append(d.Networks, dockerNetwork(n.Network))
	}
	sort.Slice(d.Networks, func(i, j int) bool { return d.Networks[i].Name < d.Networks[j].Name })

	var list []container.Summary
	if _, err := c.get(ctx, "/containers/json?all=1", &list); err != nil {
		errs = append(errs, err)
	}
	for _, s := range list {
		ct := snapshot.Container{ID: s.ID, Image: s.Image, State: string(s.State), Endpoints: []snapshot.Endpoint{}, Ports: []snapshot.PortBinding{}}
		if len(s.Names) > 0 {
			ct.Name = strings.TrimPrefix(s.Names[0], "/")
		}
		var ins container.InspectResponse
		if _, err := c.get(ctx, "/containers/"+url.PathEscape(s.ID)+"/json", &ins); err != nil {
			ct.Error = err.Error()
		} else {
			fillContainer(&ct, &ins)
		}
		d.Containers = append(d.Containers, ct)
	}
	sort.Slice(d.Containers, func(i, j int) bool { return d.Containers[i].Name < d.Containers[j].Name })
	if len(errs) > 0 {
		d.Error = errors.Join(errs...).Error()
	}
	return d
}

// dockerHint adds what to do to a connection error.
func dockerHint(err error) error {
	switch {
	case errors.Is(err, os.ErrPermission) || errors.Is(err, syscall.EACCES):
		return fmt.Errorf("%w (%w: run as root or as a member of the docker group)", err, ErrNeedsRoot)
	case errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Errorf("%w (is dockerd running? set DOCKER_HOST or --docker-host for another socket)", err)
	}
	return err
}

// dockerInfo picks the firewall-relevant fields of /info. raw is the
// same document undecoded, for fields newer than our types.
func dockerInfo(i *system.Info, raw map[string]json.RawMessage) *snapshot.DockerInfo {
	di := &snapshot.DockerInfo{
		ServerVersion:  i.ServerVersion,
		Driver:         i.Driver,
		KernelVersion:  i.KernelVersion,
		DockerRootDir:  i.DockerRootDir,
		Warnings:       i.Warnings,
		IPv4Forwarding: i.IPv4Forwarding,
		UserlandProxy:  snapshot.ProxyUnknown,
	}
	if i.FirewallBackend != nil {
		di.FirewallBackend = i.FirewallBackend.Driver
		// 29.5+ reports the proxy setting; look for it among the
		// firewall info pairs and at the top level, whichever the
		// daemon uses. Before 29.5 the API does not say, so
		// "unknown" (docker-proxy processes are a hint, not proof).
		for _, kv := range i.FirewallBackend.Info {
			if strings.EqualFold(strings.ReplaceAll(kv[0], " ", ""), "EnableUserlandProxy") {
				di.UserlandProxy = onOff(kv[1])
			}
		}
	}
	if v, ok := raw["EnableUserlandProxy"]; ok {
		di.UserlandProxy = onOff(strings.Trim(string(v), `"`))
	}
	return di
}

func onOff(s string) string {
	switch strings.ToLower(s) {
	case "true", "1", "on", "yes":
		return snapshot.ProxyOn
	case "false", "0", "off", "no":
		return snapshot.ProxyOff
	}
	return snapshot.ProxyUnknown
}

// bridgeName says which Linux bridge a bridge-driver network uses.
func bridgeName(n network.Network) string {
	if n.Driver != "bridge" {
		return ""
	}
	if b := n.Options["com.docker.network.bridge.name"]; b != "" {
		return b
	}
	if n.Name == "bridge" {
		return "docker0"
	}
	id := n.ID
	if len(id) > 12 {
		id = id[:12]
	}
	return "br-" + id
}

func dockerNetwork(n network.Network) snapshot.Network {
	sn := snapshot.Network{
		ID: n.ID, Name: n.Name, Driver: n.Driver, BridgeName: bridgeName(n),
		Internal: n.Internal, EnableIPv6: n.EnableIPv6, Options: n.Options,
		Subnets: []string{}, Gateways: []string{},
	}
	for _, c := range n.IPAM.Config {
		if c.Subnet.IsValid() {
			sn.Subnets = append(sn.Subnets, c.Subnet.String())
		}
		if c.Gateway.IsValid() {
			sn.Gateways = append(sn.Gateways, c.Gateway.String())
		}
	}
	return sn
}

func fillContainer(ct *snapshot.Container, ins *container.InspectResponse) {
	if ins.Name != "" {
		ct.Name = strings.TrimPrefix(ins.Name, "/")
	}
	if ins.Config != nil && ins.Config.Image != "" {
		ct.Image = ins.Config.Image
	}
	if ins.State != nil {
		ct.State = string(ins.State.Status)
		ct.Running = ins.State.Running
		ct.Pid = ins.State.Pid
	}
	ns := ins.NetworkSettings
	if ns == nil {
		return
	}
	ct.SandboxKey = ns.SandboxKey
	for name, es := range ns.Networks {
		if es == nil {
			continue
		}
		ep := snapshot.Endpoint{Network: name, NetworkID: es.NetworkID, IPPrefixLen: es.IPPrefixLen}
		if es.IPAddress.IsValid() {
			ep.IP = es.IPAddress.String()
		}
		if es.GlobalIPv6Address.IsValid() {
			ep.IPv6 = es.GlobalIPv6Address.String()
		}
		if len(es.MacAddress) > 0 {
			ep.MAC = es.MacAddress.String()
		}
		if es.Gateway.IsValid() {
			ep.Gateway = es.Gateway.String()
		}
		ct.Endpoints = append(ct.Endpoints, ep)
	}
	sort.Slice(ct.Endpoints, func(i, j int) bool { return ct.Endpoints[i].Network < ct.Endpoints[j].Network })
	for port, bindings := range ns.Ports {
		for _, b := range bindings {
			pb := snapshot.PortBinding{ContainerPort: int(port.Num()), Proto: string(port.Proto())}
			if b.HostIP.IsValid() {
				pb.HostIP = b.HostIP.String()
			}
			pb.HostPort, _ = strconv.Atoi(b.HostPort)
			ct.Ports = append(ct.Ports, pb)
		}
	}
	sort.Slice(ct.Ports, func(i, j int) bool {
		a, b := ct.Ports[i], ct.Ports[j]
		if a.HostPort != b.HostPort {
			return a.HostPort < b.HostPort
		}
		if a.HostIP != b.HostIP {
			return a.HostIP < b.HostIP
		}
		return a.Proto < b.Proto
	})
}
