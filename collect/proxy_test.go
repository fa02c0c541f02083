package collect

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/iptscope/iptscope/snapshot"
)

func TestParseProxyArgs(t *testing.T) {
	tests := []struct {
		name    string
		cmdline string
		want    snapshot.Proxy
		notProx bool
		wantErr string
	}{
		{
			name:    "a 20.10 proxy has no listen fd",
			cmdline: "/usr/bin/docker-proxy -proto tcp -host-ip 0.0.0.0 -host-port 8080 -container-ip 172.17.0.2 -container-port 80",
			want:    snapshot.Proxy{Proto: "tcp", HostIP: "0.0.0.0", HostPort: 8080, ContainerIP: "172.17.0.2", ContainerPort: 80},
		},
		{
			name:    "a 28.x proxy gets its socket from dockerd",
			cmdline: "docker-proxy -proto tcp -host-ip :: -host-port 7000 -container-ip 172.17.0.3 -container-port 7000 -use-listen-fd",
			want:    snapshot.Proxy{Proto: "tcp", HostIP: "::", HostPort: 7000, ContainerIP: "172.17.0.3", ContainerPort: 7000, UseListenFD: true},
		},
		{
			name:    "double dashes and = values are what Go's flag package also accepts",
			cmdline: "docker-proxy --proto=udp --host-ip=127.0.0.1 --host-port=53 --container-ip=10.0.0.2 --container-port=53",
			want:    snapshot.Proxy{Proto: "udp", HostIP: "127.0.0.1", HostPort: 53, ContainerIP: "10.0.0.2", ContainerPort: 53},
		},
		{
			name:    "a range proxy has its end port; unknown flags are kept in args only",
			cmdline: "docker-proxy -proto sctp -host-ip 0.0.0.0 -host-port 9 -host-port-end 11 -container-ip 172.17.0.2 -container-port 9 -some-flag x",
			want:    snapshot.Proxy{Proto: "sctp", HostIP: "0.0.0.0", HostPort: 9, HostPortEnd: 11, ContainerIP: "172.17.0.2", ContainerPort: 9},
		},
		{
			name:    "a bad port is an error but still a proxy",
			cmdline: "docker-proxy -proto tcp -host-port eighty",
			want:    snapshot.Proxy{Proto: "tcp"},
			wantErr: "bad port",
		},
		{
			name:    "a missing value is an error",
			cmdline: "docker-proxy -proto",
			wantErr: "missing value",
		},
		{
			name:    "a distribution's renamed binary is a proxy",
			cmdline: "/usr/libexec/docker/docker-proxy-current -proto tcp -host-ip 0.0.0.0 -host-port 80 -container-ip 172.17.0.5 -container-port 8080",
			want:    snapshot.Proxy{Proto: "tcp", HostIP: "0.0.0.0", HostPort: 80, ContainerIP: "172.17.0.5", ContainerPort: 8080},
		},
		{
			name:    "userland-proxy-path may name any binary: docker-proxy's flags tell",
			cmdline: "/opt/bin/my-proxy -proto udp -host-ip 0.0.0.0 -host-port 5353 -container-ip 172.17.0.6 -container-port 53",
			want:    snapshot.Proxy{Proto: "udp", HostIP: "0.0.0.0", HostPort: 5353, ContainerIP: "172.17.0.6", ContainerPort: 53},
		},
		{
			name:    "a program with only one of the flags is not a proxy",
			cmdline: "/usr/bin/socat -host-port 80",
			notProx: true,
		},
		{
			name:    "another program is not a proxy",
			cmdline: "/usr/sbin/dockerd -H unix:///run/docker.sock",
			notProx: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			argv := strings.Fields(tt.cmdline)
			got, ok, err := parseProxyArgs(argv)
			if ok == tt.notProx {
				t.Fatalf("ok = %v", ok)
			}
			if tt.notProx {
				return
			}
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("error %v, want %q", err, tt.wantErr)
			}
			if tt.wantErr != "" {
				return
			}
			if diff := cmp.Diff(tt.want, got, cmpopts.IgnoreFields(snapshot.Proxy{}, "Args")); diff != "" {
				t.Errorf("(-want +got)\n%s", diff)
			}
			if len(got.Args) != len(argv) {
				t.Errorf("args %q", got.Args)
			}
		})
	}
}

func TestVmRSS(t *testing.T) {
	st := "Name:\tdocker-proxy\nVmPeak:\t 1000 kB\nVmRSS:\t    3712 kB\nThreads:\t7\n"
	if got := vmRSS([]byte(st)); got != 3712*1024 {
		t.Errorf("got %d", got)
	}
	if got := vmRSS([]byte("Name:\tkthreadd\n")); got != 0 {
		t.Errorf("kernel thread: got %d", got)
	}
}

func TestSysctlPath(t *testing.T) {
	for name, want := range map[string]string{
		"net.ipv4.ip_forward":                  "/proc/sys/net/ipv4/ip_forward",
		"net.ipv4.conf.docker0.route_localnet": "/proc/sys/net/ipv4/conf/docker0/route_localnet",
		"net.ipv4.conf.eth0.100.forwarding":    "/proc/sys/net/ipv4/conf/eth0.100/forwarding",
		"net.bridge.bridge-nf-call-iptables":   "/proc/sys/net/bridge/bridge-nf-call-iptables",
	} {
		if got := sysctlPath(name); got != want {
			t.Errorf("%s: %s, want %s", name, got, want)
		}
	}
}
