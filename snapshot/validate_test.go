package snapshot_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/iptscope/iptscope/snapshot"
)

func TestEveryFixtureBundleValidates(t *testing.T) {
	paths, _ := filepath.Glob("../fixtures/*/bundle.json")
	if len(paths) == 0 {
		t.Fatal("no fixtures")
	}
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := snapshot.Load(data); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
}

func TestACraftedBundleIsRefusedNamingTheField(t *testing.T) {
	base, err := os.ReadFile("../fixtures/docker-28.5-nft-proxy-off-healthy/bundle.json")
	if err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]struct{ from, to, field string }{
		"a bridge name with a line break":    {`"bridge_name": "docker0"`, `"bridge_name": "docker0\n-A INPUT -j ACCEPT"`, "bridge_name"},
		"a bridge name of 16 bytes":          {`"bridge_name": "docker0"`, `"bridge_name": "docker0123456789"`, "bridge_name"},
		"a container name with an escape":    {`"name": "web"`, `"name": "web\u001b]0;owned\u0007"`, ".name"},
		"a subnet that does not parse":       {`"172.17.0.0/16"`, `"172.17.0.0/33"`, "not an address/prefix"},
		"a host port out of range":           {`"host_port": 8080`, `"host_port": 80800`, "host_port"},
		"a protocol that is not one":         {`"proto": "tcp"`, `"proto": "tcp -j ACCEPT"`, "proto"},
		"an endpoint address that is a name": {`"ip": "172.17.0.2"`, `"ip": "localhost"`, ".ip"},
		"a rule dump of an unknown family":   {`"family": "ipv4"`, `"family": "ipx"`, "family"},
	} {
		t.Run(name, func(t *testing.T) {
			data := strings.Replace(string(base), c.from, c.to, 1)
			if data == string(base) {
				t.Fatalf("%s is not in the fixture", c.from)
			}
			_, err := snapshot.Load([]byte(data))
			if !errors.Is(err, snapshot.ErrInvalid) || !strings.Contains(err.Error(), c.field) {
				t.Errorf("Load = %v, want ErrInvalid naming %s", err, c.field)
			}
		})
	}
}

func TestUnusualButLegalNamesAreAccepted(t *testing.T) {
	base, err := os.ReadFile("../fixtures/docker-28.5-nft-proxy-off-healthy/bundle.json")
	if err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("x", 200)
	data := strings.Replace(string(base), `"name": "web"`, `"name": "wéb-日本語-`+long+`"`, 1)
	data = strings.Replace(data, `"name": "appnet"`, `"name": "réseau-☃"`, 1)
	if _, err := snapshot.Load([]byte(data)); err != nil {
		t.Errorf("Load = %v", err)
	}
}
