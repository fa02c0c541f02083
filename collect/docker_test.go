package collect

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moby/moby/api/types/system"

	"github.com/iptscope/iptscope/snapshot"
)

var systemInfoZero system.Info

// fakeDocker serves the Engine API from a fixture folder's real daemon
// captures (docker inspect output is the API's JSON) on a unix socket.
func fakeDocker(t *testing.T, dir, apiVersion string) (host string, paths *[]string) {
	t.Helper()
	var inspect []map[string]any
	if err := json.Unmarshal([]byte(fixture(t, dir, "docker-container-inspect.json")), &inspect); err != nil {
		t.Fatal(err)
	}
	var info map[string]any
	if err := json.Unmarshal([]byte(fixture(t, dir, "docker-info.json")), &info); err != nil {
		t.Fatal(err)
	}
	var version map[string]json.RawMessage
	if err := json.Unmarshal([]byte(fixture(t, dir, "docker-version.json")), &version); err != nil {
		t.Fatal(err)
	}
	var got []string
	mux := http.NewServeMux()
	write := func(w http.ResponseWriter, v any) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(v)
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		got = append(got, r.URL.RequestURI())
		if r.URL.Path == "/_ping" {
			w.Header().Set("API-Version", apiVersion)
			w.Write([]byte("OK"))
			return
		}
		// A real daemon serves every version up to its own.
		v, p, ok := strings.Cut(strings.TrimPrefix(r.URL.Path, "/v"), "/")
		p = "/" + p
		if !ok || minAPIVersion(v, apiVersion) != v {
			http.Error(w, `{"message":"client version too new"}`, http.StatusBadRequest)
			return
		}
		switch {
		case p == "/version":
			w.Write(version["Server"])
		case p == "/info":
			write(w, info)
		case p == "/networks":
			w.Write([]byte(fixture(t, dir, "docker-network-inspect.json")))
		case p == "/containers/json":
			var list []map[string]any
			for _, c := range inspect {
				st := c["State"].(map[string]any)
				cfg := c["Config"].(map[string]any)
				list = append(list, map[string]any{"Id": c["Id"], "Names": []string{c["Name"].(string)}, "Image": cfg["Image"], "State": st["Status"]})
			}
			write(w, list)
		case strings.HasPrefix(p, "/containers/") && strings.HasSuffix(p, "/json"):
			id := strings.TrimSuffix(strings.TrimPrefix(p, "/containers/"), "/json")
			for _, c := range inspect {
				if c["Id"] == id {
					write(w, c)
					return
				}
			}
			http.Error(w, `{"message":"No such container"}`, http.StatusNotFound)
		default:
			http.NotFound(w, r)
		}
	})
	sock := filepath.Join(t.TempDir(), "docker.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: mux}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return "unix://" + sock, &got
}

func TestCollectDocker(t *testing.T) {
	tests := []struct {
		name, dir, api, wantVersion, wantAPI, wantFirewall string
		wantV6Proxy                                        bool
	}{
		{name: "a 20.10 daemon is read with its own API version 1.41", dir: "docker-20.10-nft", api: "1.41", wantVersion: "20.10.24", wantAPI: "1.41"},
		{name: "a 28.5 daemon reports its firewall backend", dir: "docker-28.5-nft", api: "1.51", wantVersion: "28.5.2", wantAPI: "1.51", wantFirewall: "iptables"},
		{name: "a daemon newer than our types is spoken to in our version", dir: "docker-28.5-legacy", api: "1.99", wantVersion: "28.5.2", wantAPI: ourAPIVersion, wantFirewall: "iptables"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			host, paths := fakeDocker(t, tt.dir, tt.api)
			d := collectDocker(context.Background(), host)
			if p := (*paths)[1]; p != "/v"+tt.wantAPI+"/version" {
				t.Errorf("second request %q", p)
			}
			if d.Error != "" {
				t.Fatalf("error: %s", d.Error)
			}
			if !strings.HasPrefix(d.Version, tt.wantVersion) || d.APIVersion != tt.wantAPI {
				t.Errorf("version %q api %q", d.Version, d.APIVersion)
			}
			if d.Info == nil || d.Info.FirewallBackend != tt.wantFirewall || d.Info.UserlandProxy != snapshot.ProxyUnknown {
				t.Errorf("info %+v", d.Info)
			}
			nets := map[string]snapshot.Network{}
			for _, n := range d.Networks {
				nets[n.Name] = n
			}
			if b := nets["bridge"]; b.BridgeName != "docker0" || len(b.Subnets) != 1 || b.Subnets[0] != "172.17.0.0/16" || b.Options["com.docker.network.bridge.enable_icc"] != "true" {
				t.Errorf("bridge network %+v", b)
			}
			if a := nets["appnet"]; a.BridgeName != "br-"+a.ID[:12] || a.Internal {
				t.Errorf("appnet %+v", a)
			}
			if b := nets["backnet"]; !b.Internal {
				t.Errorf("backnet not internal: %+v", b)
			}
			if h := nets["host"]; h.BridgeName != "" {
				t.Errorf("host network has a bridge: %+v", h)
			}
			cs := map[string]snapshot.Container{}
			for _, c := range d.Containers {
				cs[c.Name] = c
			}
			if len(cs) != 4 {
				t.Fatalf("containers %v", cs)
			}
			web := cs["web"]
			if !web.Running || web.Pid == 0 || web.Image != "bb:local" || len(web.Endpoints) != 1 {
				t.Fatalf("web %+v", web)
			}
			ep := web.Endpoints[0]
			if ep.Network != "bridge" || ep.IP != "172.17.0.2" || ep.IPPrefixLen != 16 || ep.Gateway != "172.17.0.1" || ep.MAC == "" {
				t.Errorf("web endpoint %+v", ep)
			}
			if len(web.Ports) == 0 || web.Ports[0] != (snapshot.PortBinding{HostIP: "0.0.0.0", HostPort: 8080, ContainerPort: 80, Proto: "tcp"}) {
				t.Errorf("web ports %+v", web.Ports)
			}
			var local bool
			for _, p := range cs["multi"].Ports {
				local = local || p == (snapshot.PortBinding{HostIP: "127.0.0.1", HostPort: 9090, ContainerPort: 80, Proto: "tcp"})
			}
			if !local {
				t.Errorf("multi ports %+v", cs["multi"].Ports)
			}
		})
	}
}

func TestCollectDockerWithoutDaemon(t *testing.T) {
	host := "unix://" + filepath.Join(t.TempDir(), "missing.sock")
	d := collectDocker(context.Background(), host)
	want := "docker API not reachable at " + host + ": "
	if !strings.HasPrefix(d.Error, want) || !strings.Contains(d.Error, "is dockerd running?") {
		t.Errorf("error %q, want prefix %q", d.Error, want)
	}
	if d.Containers == nil || d.Networks == nil {
		t.Error("nil lists")
	}
}

func TestMinAPIVersion(t *testing.T) {
	for _, tt := range []struct{ server, ours, want string }{
		{"1.41", "1.56", "1.41"}, {"1.60", "1.56", "1.56"}, {"1.9", "1.10", "1.9"}, {"", "1.56", "1.56"},
	} {
		if got := minAPIVersion(tt.server, tt.ours); got != tt.want {
			t.Errorf("min(%q, %q) = %q, want %q", tt.server, tt.ours, got, tt.want)
		}
	}
}

func TestUserlandProxyFromInfo(t *testing.T) {
	var raw map[string]json.RawMessage
	json.Unmarshal([]byte(`{"EnableUserlandProxy":false}`), &raw)
	if got := dockerInfo(&systemInfoZero, raw).UserlandProxy; got != snapshot.ProxyOff {
		t.Errorf("got %q", got)
	}
}
