// Package snapshot is the bundle `iptscope collect` writes and every check
// reads: the iptables dumps of both backends and families, the links,
// addresses, routes and neighbours of one network namespace, the sysctls
// that matter to Docker, the docker-proxy processes and what the Docker
// Engine API says. It is plain data: no exec, no files, no sockets.
//
// A part that could not be read records its own error (PartError, or the
// Error field of RuleDump and Docker); a snapshot is never all-or-nothing.
//
// The iptables rules are stored as the exact `iptables-save -c` text (Raw)
// and re-parsed by Load: the bundle stays small and loses nothing.
package snapshot

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	gojson "github.com/goccy/go-json"

	"github.com/iptscope/iptscope/parse"
)

// Schema is the value of the "schema" field of every snapshot this
// version writes and the only one Load accepts.
const Schema = "iptscope.snapshot/v1"

// ErrSchema is returned by Load for a document that is not a snapshot of
// this schema version.
var ErrSchema = errors.New("unsupported snapshot schema")

// Backends and families used in RuleDump and DockerBackend.
const (
	BackendNFT    = "nft"
	BackendLegacy = "legacy"
	// BackendBoth: Docker's chains exist in both backends (typically a
	// daemon switched from one to the other; the old rules still apply).
	BackendBoth = "both"
	// BackendNone: no backend holds a DOCKER, DOCKER-USER or
	// DOCKER-FORWARD chain.
	BackendNone = "none"

	FamilyIPv4 = "ipv4"
	FamilyIPv6 = "ipv6"
)

// Snapshot is everything collected from one network namespace.
type Snapshot struct {
	Schema      string    `json:"schema"`
	CollectedAt time.Time `json:"collected_at"`
	Host        Host      `json:"host"`
	// Rules holds one dump per (backend, family) that was tried.
	Rules []RuleDump `json:"rules"`
	// IptablesBackend is what `iptables` on PATH uses: "nft" or "legacy"
	// (from `iptables -V`: "(nf_tables)" / "(legacy)"); "" if unknown.
	IptablesBackend string `json:"iptables_backend"`
	// DockerBackend is which backend holds Docker's chains: "nft",
	// "legacy", "both" or "none".
	DockerBackend string            `json:"docker_backend"`
	Links         []Link            `json:"links"`
	Addrs         []Addr            `json:"addrs"`
	Routes        []Route           `json:"routes"`
	Neighbors     []Neighbor        `json:"neighbors"`
	Sysctls       map[string]Sysctl `json:"sysctls"`
	Proxies       []Proxy           `json:"proxies"`
	// Daemons are the dockerd processes of the namespace with the settings
	// that shape Docker's rules (flags, then its config file).
	// Absent in bundles from before iptscope read them; [] when none runs
	// here.
	Daemons []Daemon `json:"daemons"`
	IPSets  []IPSet  `json:"ipsets,omitempty"` // see ipset.go
	// Nftables is the native nftables ruleset (see NftRuleset); nil in
	// bundles from before iptscope read it.
	Nftables *NftRuleset `json:"nftables,omitempty"`
	Docker   *Docker     `json:"docker,omitempty"`
	Errors   []PartError `json:"errors,omitempty"`
}

// Host identifies the machine and the network namespace.
type Host struct {
	Hostname      string `json:"hostname"`
	KernelRelease string `json:"kernel_release"`
	// NetNS is the name given (under /var/run/netns) or "" for the
	// collector's own namespace; NetNSPath the path that was opened.
	NetNS      string `json:"netns,omitempty"`
	NetNSPath  string `json:"netns_path"`
	NetNSInode uint64 `json:"netns_inode"`
	// AllProcesses is true when the collector saw every process of the
	// host (it runs in the initial PID namespace), so that "no dockerd in
	// this network namespace" means there is none.
	AllProcesses bool `json:"all_processes,omitempty"`
}

// ReaderNetlink is RuleDump.Reader for a dump read over netlink.
const ReaderNetlink = "netlink"

// RuleDump is one `<family>-<backend>-save -c` output.
type RuleDump struct {
	Backend string `json:"backend"` // "nft" or "legacy"; "" = plain iptables-save
	Family  string `json:"family"`  // "ipv4" or "ipv6"
	// Raw is the save output exactly as the tool printed it, or, when
	// Reader is ReaderNetlink, the text the tool prints for the same
	// ruleset.
	Raw string `json:"raw"`
	// Reader says how Raw was read: "" by running the save tool,
	// ReaderNetlink by iptscope's own netlink reader of iptables-nft's
	// tables (collect/nftsave.go), which prints what iptables-nft-save -c
	// prints but for the "#" comment lines.
	Reader string `json:"reader,omitempty"`
	// Ruleset is Raw parsed; nil when Raw is empty or did not parse. Not
	// serialised: Load re-parses Raw.
	Ruleset *parse.Ruleset `json:"-"`
	// Error says why the dump is missing or did not parse.
	Error string `json:"error,omitempty"`
}

// Link is one network interface (`ip -d link`).
type Link struct {
	Name        string `json:"name"`
	Index       int    `json:"index"`
	Kind        string `json:"kind"` // "bridge", "veth", "device", "dummy", ...
	Master      string `json:"master,omitempty"`
	MasterIndex int    `json:"master_index,omitempty"`
	OperState   string `json:"oper_state"`
	Up          bool   `json:"up"` // IFF_UP (administratively up)
	MAC         string `json:"mac,omitempty"`
	MTU         int    `json:"mtu"`
	// PeerIndex is the ifindex of a veth's peer (in the peer's namespace),
	// PeerNetNSID the peer's namespace id as seen from this one (-1 or
	// absent: same namespace or unknown).
	PeerIndex   int `json:"peer_index,omitempty"`
	PeerNetNSID int `json:"peer_netnsid,omitempty"`
	// Hairpin is a bridge port's hairpin mode; nil when not read (not a
	// bridge port, or too many ports to ask netlink one by one).
	Hairpin *bool `json:"hairpin,omitempty"`
}

// Addr is one interface address.
type Addr struct {
	Link   string `json:"link"`
	Family string `json:"family"` // "ipv4" or "ipv6"
	CIDR   string `json:"cidr"`   // "172.17.0.1/16"
}

// Route is one route of the main table.
type Route struct {
	Dst      string `json:"dst"` // "default" for the default route
	Gateway  string `json:"gateway,omitempty"`
	Dev      string `json:"dev,omitempty"`
	Table    int    `json:"table"`
	Protocol string `json:"protocol,omitempty"`
	Scope    string `json:"scope,omitempty"`
}

// Neighbor is one ARP/NDP entry.
type Neighbor struct {
	Link  string `json:"link"`
	IP    string `json:"ip"`
	MAC   string `json:"mac,omitempty"`
	State string `json:"state"`
}

// Sysctl is one value under /proc/sys. Present is false when the file does
// not exist (net.bridge.* without br_netfilter): that is not "0".
type Sysctl struct {
	Value   string `json:"value"`
	Present bool   `json:"present"`
}

// Proxy is one docker-proxy process in the namespace.
type Proxy struct {
	PID           int      `json:"pid"`
	RSSBytes      int64    `json:"rss_bytes"`
	Args          []string `json:"args"`
	Proto         string   `json:"proto"`
	HostIP        string   `json:"host_ip"`
	HostPort      int      `json:"host_port"`
	ContainerIP   string   `json:"container_ip"`
	ContainerPort int      `json:"container_port"`
	// HostPortEnd is -host-port-end when given: one proxy for the host
	// ports HostPort..HostPortEnd.
	HostPortEnd int `json:"host_port_end,omitempty"`
	// UseListenFD: -use-listen-fd (28.0+: dockerd binds the socket).
	UseListenFD bool `json:"use_listen_fd,omitempty"`
}

// Daemon is a dockerd process and the settings of its command line and
// config file that shape the rules Docker writes. A nil setting is not set
// (Docker's default applies).
type Daemon struct {
	PID  int      `json:"pid"`
	Args []string `json:"args"`
	// Hosts are its -H/--host endpoints ("unix:///var/run/docker.sock").
	Hosts []string `json:"hosts,omitempty"`
	// ConfigFile is the daemon.json it reads (as the daemon sees the path);
	// ConfigError why it could not be read ("" also when the default file
	// does not exist, which is normal).
	ConfigFile    string `json:"config_file,omitempty"`
	ConfigError   string `json:"config_error,omitempty"`
	IPTables      *bool  `json:"iptables,omitempty"`
	IP6Tables     *bool  `json:"ip6tables,omitempty"`
	IPForward     *bool  `json:"ip_forward,omitempty"`
	IPMasq        *bool  `json:"ip_masq,omitempty"`
	UserlandProxy *bool  `json:"userland_proxy,omitempty"`
	ICC           *bool  `json:"icc,omitempty"`
}

// Docker is what the Docker Engine API said. Error is set when the API
// could not be reached or a call failed; what was read before stays.
type Docker struct {
	Host       string      `json:"host"`        // endpoint used, e.g. unix:///var/run/docker.sock
	APIVersion string      `json:"api_version"` // negotiated version used in the URLs
	Version    string      `json:"version"`     // server version, e.g. "20.10.24", "28.5.2"
	Info       *DockerInfo `json:"info,omitempty"`
	Networks   []Network   `json:"networks"`
	Containers []Container `json:"containers"`
	Error      string      `json:"error,omitempty"`
	// Inferred is true when this view was not read from the API but
	// reconstructed by diagnose.Infer from links, addresses, neighbours,
	// docker-proxy arguments and the rules (the API was unreachable). It
	// is never written by collect; checks must not conclude that
	// something is absent from such a view.
	Inferred bool `json:"inferred,omitempty"`
}

// Userland-proxy states in DockerInfo.UserlandProxy.
const (
	ProxyOn      = "on"
	ProxyOff     = "off"
	ProxyUnknown = "unknown"
)

// DockerInfo is the subset of GET /info that matters to the firewall.
type DockerInfo struct {
	ServerVersion string   `json:"server_version"`
	Driver        string   `json:"driver"`
	KernelVersion string   `json:"kernel_version"`
	DockerRootDir string   `json:"docker_root_dir"`
	Warnings      []string `json:"warnings,omitempty"`
	// FirewallBackend is FirewallBackend.Driver (API 1.49+, Docker 28.1+):
	// "iptables", "iptables+firewalld", "nftables", ...; "" before.
	FirewallBackend string `json:"firewall_backend,omitempty"`
	IPv4Forwarding  bool   `json:"ipv4_forwarding"`
	// UserlandProxy is "on"/"off" when the daemon reports it (29.5+:
	// EnableUserlandProxy), else "unknown": older APIs do not expose it.
	UserlandProxy string `json:"userland_proxy"`
}

// Network is one Docker network.
type Network struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	Driver string `json:"driver"`
	// BridgeName (bridge driver): the com.docker.network.bridge.name
	// option, else docker0 for the default "bridge" network, else
	// "br-" + the first 12 characters of the ID.
	BridgeName string            `json:"bridge_name,omitempty"`
	Subnets    []string          `json:"subnets"`
	Gateways   []string          `json:"gateways"`
	Internal   bool              `json:"internal"`
	EnableIPv6 bool              `json:"enable_ipv6"`
	Options    map[string]string `json:"options,omitempty"`
}

// Container is one container (running or not).
type Container struct {
	ID         string        `json:"id"`
	Name       string        `json:"name"`
	Image      string        `json:"image"`
	State      string        `json:"state"`
	Running    bool          `json:"running"`
	Pid        int           `json:"pid"`
	SandboxKey string        `json:"sandbox_key,omitempty"`
	Endpoints  []Endpoint    `json:"endpoints"`
	Ports      []PortBinding `json:"ports"`
	// Error says why part of the container could not be read (inspect
	// failed, sandbox not readable).
	Error string `json:"error,omitempty"`
}

// Endpoint is a container's attachment to one network.
type Endpoint struct {
	Network     string `json:"network"`
	NetworkID   string `json:"network_id"`
	IP          string `json:"ip"` // without prefix length
	IPPrefixLen int    `json:"ip_prefix_len"`
	IPv6        string `json:"ipv6,omitempty"`
	MAC         string `json:"mac,omitempty"`
	Gateway     string `json:"gateway,omitempty"`
	// HostVeth is the host-side veth of this endpoint, found through the
	// sandbox's interface peer index; "" when it could not be found.
	HostVeth      string `json:"host_veth,omitempty"`
	HostVethIndex int    `json:"host_veth_index,omitempty"`
}

// PortBinding is one published port.
type PortBinding struct {
	HostIP        string `json:"host_ip"`
	HostPort      int    `json:"host_port"`
	ContainerPort int    `json:"container_port"`
	Proto         string `json:"proto"`
}

// PartError is a part of the snapshot that could not be read.
type PartError struct {
	Part  string `json:"part"` // "iptables", "netlink", "sysctl", "proxies", "docker", "netns", ...
	Error string `json:"error"`
}

// Dump returns the dump for a backend and family, or nil. (The brief's
// name, Rules, is taken by the field: Go allows no method of that name.)
func (s *Snapshot) Dump(backend, family string) *RuleDump {
	if s == nil {
		return nil
	}
	for i := range s.Rules {
		if s.Rules[i].Backend == backend && s.Rules[i].Family == family {
			return &s.Rules[i]
		}
	}
	return nil
}

// AddError records a part error.
func (s *Snapshot) AddError(part string, err error) {
	if err != nil {
		s.Errors = append(s.Errors, PartError{Part: part, Error: err.Error()})
	}
}

// ParseRules parses every dump's Raw into its Ruleset. A dump that does not
// parse keeps Ruleset nil and gets the parse error in Error (unless it
// already had one). Idempotent.
func (s *Snapshot) ParseRules() {
	// Why concurrent: a bundle holds up to four dumps (two backends, two
	// families) and parsing is most of loading a big host's bundle.
	var wg sync.WaitGroup
	for i := range s.Rules {
		wg.Go(func() { s.Rules[i].parse() })
	}
	wg.Wait()
}

// parse fills d.Ruleset from d.Raw (see ParseRules).
func (d *RuleDump) parse() {
	d.Ruleset = nil
	if d.Raw == "" {
		return
	}
	rs, err := parse.ParseString(d.Raw)
	if err != nil {
		if d.Error == "" {
			d.Error = fmt.Sprintf("parsing %s %s rules: %v", d.Backend, d.Family, err)
		}
		return
	}
	d.Ruleset = rs
}

// Load decodes a snapshot, checks its schema (ErrSchema otherwise) and
// re-parses every rule dump (see ParseRules; a dump that does not parse is
// not an error of Load).
func Load(data []byte) (*Snapshot, error) {
	// Why one decode with the rules kept raw: a probe of the schema
	// first decoded the whole document twice (0.3 s on a 33,000-port
	// bundle). The dumps are decoded last so that a document of another
	// schema is reported as such, not as a type error.
	var doc struct {
		*Snapshot
		Rules json.RawMessage `json:"rules"`
	}
	doc.Snapshot = &Snapshot{}
	if err := fastUnmarshal(data, &doc); err != nil {
		var probe struct {
			Schema string `json:"schema"`
		}
		if json.Unmarshal(data, &probe) == nil && probe.Schema != Schema {
			return nil, fmt.Errorf("reading snapshot: schema %q: %w (want %q)", probe.Schema, ErrSchema, Schema)
		}
		return nil, fmt.Errorf("reading snapshot: %w", err)
	}
	s := doc.Snapshot
	if s == nil {
		s = &Snapshot{}
	}
	if s.Schema != Schema {
		return nil, fmt.Errorf("reading snapshot: schema %q: %w (want %q)", s.Schema, ErrSchema, Schema)
	}
	if len(doc.Rules) > 0 && !decodeDumps(doc.Rules, &s.Rules) {
		if err := fastUnmarshal(doc.Rules, &s.Rules); err != nil {
			return nil, fmt.Errorf("reading snapshot: rules: %w", err)
		}
	}
	s.shrink()
	// Why at once: validating a 33,000-port bundle and parsing its dumps
	// take about as long each, and they touch different fields (Validate
	// reads a dump's family and backend, parse writes its Ruleset).
	var verr error
	var wg sync.WaitGroup
	wg.Go(func() { verr = s.Validate() })
	s.ParseRules()
	wg.Wait()
	if verr != nil {
		return nil, fmt.Errorf("reading snapshot: %w", verr) // validate.go
	}
	return s, nil
}

// shrink gives the decoded lists their exact size. Why: the decoders
// leave room to grow (goccy/go-json: 4 endpoints and 4 ports per
// container, 16 arguments per docker-proxy), about 22 MB on a
// 33,000-port bundle that stays live for the whole run.
func (s *Snapshot) shrink() {
	s.Proxies = exact(s.Proxies)
	for i := range s.Proxies {
		s.Proxies[i].Args = exact(s.Proxies[i].Args)
	}
	if s.Docker == nil {
		return
	}
	s.Docker.Containers = exact(s.Docker.Containers)
	for i := range s.Docker.Containers {
		c := &s.Docker.Containers[i]
		c.Endpoints, c.Ports = exact(c.Endpoints), exact(c.Ports)
	}
}

// exact is l in a slice of its own length (l itself when it has no room
// to spare; nil stays nil).
func exact[T any](l []T) []T {
	if cap(l) == len(l) {
		return l
	}
	return append(make([]T, 0, len(l)), l...)
}

// fastUnmarshal decodes with github.com/goccy/go-json, three times as
// fast as encoding/json on a big bundle (0.12 s against 0.38 s for a
// 33,000-port host's 29 MB). A bundle is untrusted input: whenever the
// fast decoder fails or panics, encoding/json decodes it again, so errors
// read as encoding/json's and a decoder bug cannot crash the command.
// TestFastDecodeMatchesEncodingJSON holds the two to the same result on
// every fixture.
func fastUnmarshal(data []byte, v any) (err error) {
	func() {
		defer func() {
			if recover() != nil {
				err = errFastDecode
			}
		}()
		err = gojson.Unmarshal(data, v)
	}()
	if err == nil {
		return nil
	}
	// Why a fresh value: the fast decoder may have filled part of v.
	rv := reflect.ValueOf(v).Elem()
	rv.Set(reflect.Zero(rv.Type()))
	return json.Unmarshal(data, v)
}

var errFastDecode = errors.New("fast decoder failed")

// decodeDumps decodes the "rules" array with each dump's text unescaped
// by unquoteJSON, and reports whether it could: anything either does not
// take (a value of another type, an escape it leaves to encoding/json) is
// decoded again by fastUnmarshal. Why: the decoders unescape a string
// into a buffer that grows as it goes, 59 MB of garbage for the 9.7 MB
// dump of a 33,000-port host, while the whole bundle is being decoded.
func decodeDumps(data []byte, out *[]RuleDump) (ok bool) {
	var raws []struct {
		Backend string          `json:"backend"`
		Family  string          `json:"family"`
		Raw     json.RawMessage `json:"raw"`
		Reader  string          `json:"reader,omitempty"`
		Error   string          `json:"error,omitempty"`
	}
	func() {
		defer func() {
			if recover() != nil {
				ok = false
			}
		}()
		ok = gojson.Unmarshal(data, &raws) == nil
	}()
	if !ok || raws == nil {
		return false
	}
	dumps := make([]RuleDump, len(raws))
	for i, r := range raws {
		raw, ok := "", true
		if len(r.Raw) > 0 && string(r.Raw) != "null" {
			raw, ok = unquoteJSON(r.Raw)
		}
		if !ok {
			return false
		}
		dumps[i] = RuleDump{Backend: r.Backend, Family: r.Family, Raw: raw, Reader: r.Reader, Error: r.Error}
	}
	*out = dumps
	return true
}

// unquoteJSON decodes a JSON string literal into a string allocated once
// at its exact size. It takes the escapes encoding/json writes for text
// (\n, \t, \", \\, \/, \b, \f, \r and \uXXXX outside the surrogates)
// in valid UTF-8, and refuses (ok false) anything else, which encoding/json
// then decodes with its own rules (replacement characters, errors).
func unquoteJSON(lit []byte) (string, bool) {
	if len(lit) < 2 || lit[0] != '"' || lit[len(lit)-1] != '"' {
		return "", false
	}
	body := lit[1 : len(lit)-1]
	if !utf8.Valid(body) {
		return "", false
	}
	// Pass 1: validate and size.
	n := 0
	for i := 0; i < len(body); i++ {
		c := body[i]
		switch {
		case c == '"' || c < 0x20:
			return "", false
		case c != '\\':
			n++
		case i+1 >= len(body):
			return "", false
		default:
			i++
			switch body[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				n++
			case 'u':
				r, ok := hex4(body[i+1:])
				if !ok || utf16.IsSurrogate(r) {
					return "", false
				}
				n += utf8.RuneLen(r)
				i += 4
			default:
				return "", false
			}
		}
	}
	// Pass 2: write.
	var b strings.Builder
	b.Grow(n)
	for i := 0; i < len(body); {
		j := bytes.IndexByte(body[i:], '\\')
		if j < 0 {
			b.Write(body[i:])
			break
		}
		b.Write(body[i : i+j])
		i += j + 1
		switch c := body[i]; c {
		case 'b':
			b.WriteByte('\b')
		case 'f':
			b.WriteByte('\f')
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 't':
			b.WriteByte('\t')
		case 'u':
			r, _ := hex4(body[i+1:])
			b.WriteRune(r)
			i += 4
		default: // " \ /
			b.WriteByte(c)
		}
		i++
	}
	return b.String(), true
}

// hex4 reads the four hex digits of a \u escape.
func hex4(s []byte) (rune, bool) {
	if len(s) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range s[:4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// FromDump is the snapshot of a raw iptables dump (iptables-save or
// `iptables -L -n -v` text, already parsed): its rules and nothing else,
// with a Docker section that says the input has no Docker view. The
// family is IPv6 when the rules' addresses are IPv6 (an ip6tables dump),
// else IPv4.
func FromDump(raw string, rs *parse.Ruleset, source string) *Snapshot {
	return &Snapshot{
		Schema: Schema,
		Rules:  []RuleDump{{Family: DumpFamily(rs), Raw: raw, Ruleset: rs}},
		Docker: &Docker{Error: "not in the input: " + source + " is a raw iptables dump"},
	}
}

// DumpFamily tells an ip6tables dump from an iptables one by the addresses
// its rules name (IPv4 when none does).
func DumpFamily(rs *parse.Ruleset) string {
	if rs == nil {
		return FamilyIPv4
	}
	for _, t := range rs.Tables {
		for _, c := range t.Chains {
			for _, r := range c.Rules {
				for _, v := range []string{r.Source.Value, r.Destination.Value, r.NATTo()} {
					switch {
					case v == "":
					case strings.Contains(v, ":") && !strings.Contains(v, "."):
						return FamilyIPv6
					case strings.Contains(v, "."):
						return FamilyIPv4
					}
				}
			}
		}
	}
	return FamilyIPv4
}
