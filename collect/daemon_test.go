package collect

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/iptscope/iptscope/snapshot"
)

func bp(b bool) *bool { return &b }

func TestParseDaemonArgs(t *testing.T) {
	tests := []struct {
		cmdline string
		want    snapshot.Daemon
		notD    bool
	}{
		{
			cmdline: "/usr/sbin/dockerd -H fd:// --containerd=/run/containerd/containerd.sock",
			want:    snapshot.Daemon{Hosts: []string{"fd://"}},
		},
		{
			cmdline: "dockerd --iptables=false --ip6tables --userland-proxy=false --config-file /etc/d.json -H unix:///x.sock --icc=0",
			want: snapshot.Daemon{IPTables: bp(false), IP6Tables: bp(true), UserlandProxy: bp(false), ICC: bp(false),
				ConfigFile: "/etc/d.json", Hosts: []string{"unix:///x.sock"}},
		},
		{
			cmdline: "dockerd --ip-masq=false --ip-forward=true --host=tcp://0.0.0.0:2375 --config-file=/c.json --iptables=maybe",
			want:    snapshot.Daemon{IPMasq: bp(false), IPForward: bp(true), Hosts: []string{"tcp://0.0.0.0:2375"}, ConfigFile: "/c.json"},
		},
		{cmdline: "/usr/bin/containerd --config x", notD: true},
	}
	for _, tt := range tests {
		t.Run(tt.cmdline, func(t *testing.T) {
			got, ok := parseDaemonArgs(strings.Fields(tt.cmdline))
			if ok == tt.notD {
				t.Fatalf("ok = %v", ok)
			}
			if tt.notD {
				return
			}
			got.Args = nil
			if d := cmp.Diff(tt.want, got); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
		})
	}
}

func TestApplyDaemonConfig(t *testing.T) {
	d := snapshot.Daemon{ConfigFile: "/etc/docker/daemon.json", UserlandProxy: bp(true)}
	err := applyDaemonConfig(&d, []byte(`{"iptables": false, "userland-proxy": false, "ip6tables": true, "hosts": ["unix:///run/d.sock"], "log-level": "debug"}`))
	if err != nil {
		t.Fatal(err)
	}
	// The command line wins (dockerd refuses both; the flag is what runs).
	want := snapshot.Daemon{ConfigFile: "/etc/docker/daemon.json", UserlandProxy: bp(true), IPTables: bp(false), IP6Tables: bp(true), Hosts: []string{"unix:///run/d.sock"}}
	if diff := cmp.Diff(want, d); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if err := applyDaemonConfig(&snapshot.Daemon{}, []byte(`{"iptables": "no"}`)); err == nil || !strings.Contains(err.Error(), "not a boolean") {
		t.Errorf("err = %v", err)
	}
	if err := applyDaemonConfig(&snapshot.Daemon{}, []byte(`{`)); err == nil {
		t.Error("a broken daemon.json parsed")
	}
}

// TestReadDaemonsFakeProc: readDaemons over a fake /proc holding one
// "dockerd" whose ns/net is this process's and whose root has a config.
func TestReadDaemonsFakeProc(t *testing.T) {
	proc := t.TempDir()
	pid := filepath.Join(proc, "4242")
	if err := os.MkdirAll(filepath.Join(pid, "ns"), 0o755); err != nil {
		t.Fatal(err)
	}
	cfgDir := filepath.Join(pid, "root", "etc", "docker")
	if err := os.MkdirAll(cfgDir, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(p, s string) {
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(pid, "cmdline"), "/usr/sbin/dockerd\x00-H\x00fd://\x00")
	write(filepath.Join(cfgDir, "daemon.json"), `{"iptables": false}`)
	// ns/net: a symlink to this process's namespace file.
	if err := os.Symlink("/proc/self/ns/net", filepath.Join(pid, "ns", "net")); err != nil {
		t.Fatal(err)
	}
	ino, err := inode("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	ds, err := readDaemons(proc, ino)
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 1 || ds[0].PID != 4242 || ds[0].IPTables == nil || *ds[0].IPTables || ds[0].ConfigFile != "/etc/docker/daemon.json" {
		t.Fatalf("daemons %+v", ds)
	}
	// Another namespace: not ours.
	if ds, _ := readDaemons(proc, ino+1); len(ds) != 0 {
		t.Errorf("a dockerd of another namespace was read: %+v", ds)
	}
	// No daemon.json: every setting is the default, no error.
	os.Remove(filepath.Join(cfgDir, "daemon.json"))
	ds, _ = readDaemons(proc, ino)
	if len(ds) != 1 || ds[0].ConfigFile != "" || ds[0].ConfigError != "" || ds[0].IPTables != nil {
		t.Errorf("without daemon.json: %+v", ds)
	}
}
