//go:build linux

package collect

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// scratchNS makes an empty namespace, removed when the test ends.
func scratchNS(t *testing.T, suffix string) (name, path string) {
	t.Helper()
	requireRoot(t, "ip", "nsenter", "iptables-nft-restore", "iptables-nft-save")
	name = fmt.Sprintf("iptscope-ns-%d-%s", os.Getpid(), suffix)
	path = filepath.Join(netnsDir, name)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	run(t, "ip", "netns", "add", name)
	return name, path
}

// restoreIn loads a save text into the namespace with iptables-nft-restore -c.
func restoreIn(t *testing.T, path string, f Family, text string) {
	t.Helper()
	tool := "iptables-nft-restore"
	if f == IPv6 {
		tool = "ip6tables-nft-restore"
	}
	cmd := exec.Command("nsenter", "--net="+path, tool, "-c")
	cmd.Stdin = strings.NewReader(text)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", tool, err, out)
	}
}

// saveIn is iptables-nft-save -c's output in the namespace.
func saveIn(t *testing.T, path string, f Family) string {
	t.Helper()
	return run(t, "nsenter", "--net="+path, SaveCommand(f, "nft"), "-c")
}

// readIn is nftSave's output in the namespace.
func readIn(path string, f Family) ([]byte, error) {
	var out []byte
	err := inNetNS(path, func() error {
		var err error
		out, err = nftSave(f)
		return err
	})
	return out, err
}

// withoutComments drops the "#" lines (the tools' names and the times).
func withoutComments(s string) string {
	var b strings.Builder
	for l := range strings.Lines(s) {
		if !strings.HasPrefix(l, "#") {
			b.WriteString(l)
		}
	}
	return b.String()
}

// sameAsSave fails unless nftSave prints what iptables-nft-save -c prints.
func sameAsSave(t *testing.T, path string, f Family, what string) {
	t.Helper()
	want := withoutComments(saveIn(t, path, f))
	got, err := readIn(path, f)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if g := withoutComments(string(got)); g != want {
		t.Fatalf("%s: the netlink read differs from iptables-nft-save -c (- save, + netlink):\n%s", what, lineDiffOf(want, g))
	}
}

// TestNftSaveIsIptablesNftSave loads the iptables-nft rules of every
// fixture (real captures of Docker 20.10 to 29, both families) into a
// namespace and reads them back both ways: the netlink reader must print
// every one of them, and print what iptables-nft-save prints.
func TestNftSaveIsIptablesNftSave(t *testing.T) {
	_, path := scratchNS(t, "fx")
	files, _ := filepath.Glob("../fixtures/*/ip*tables-save.nft.txt")
	if len(files) == 0 {
		t.Fatal("no fixture dumps")
	}
	n := 0
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if len(bytes.TrimSpace(data)) == 0 {
			continue
		}
		f := IPv4
		if strings.HasPrefix(filepath.Base(file), "ip6") {
			f = IPv6
		}
		// A fresh ruleset each time: the tables of the last file go.
		run(t, "nsenter", "--net="+path, "nft", "flush", "ruleset")
		restoreIn(t, path, f, string(data))
		sameAsSave(t, path, f, file)
		n++
	}
	t.Logf("%d fixture dumps read alike", n)
}

// TestNftSaveForms covers the forms of rule the fixtures lack: every
// option the reader prints, negated and not, and IPv6.
func TestNftSaveForms(t *testing.T) {
	_, path := scratchNS(t, "forms")
	v4 := `*filter
:INPUT DROP [7:420]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:A - [0:0]
:B-chain - [0:0]
[1:2] -A FORWARD -s 10.1.2.3/32 -j ACCEPT
[3:4] -A FORWARD ! -s 10.1.0.0/16 ! -d 10.2.0.0/12 -j DROP
-A FORWARD -s 10.0.0.0/8 -d 192.168.1.0/24 -i eth0 -o br-+ -j A
-A FORWARD ! -i veth+ ! -o docker0 -p udp -m udp --sport 53 -j RETURN
-A FORWARD -p tcp -m tcp --sport 1000:2000 --dport 80 -j ACCEPT
-A FORWARD -p tcp -m tcp ! --dport 8000:8100 -j ACCEPT
-A FORWARD -p tcp -m tcp ! --sport 22 -j ACCEPT
-A FORWARD ! -p tcp -j A
-A FORWARD -p icmp -j ACCEPT
-A FORWARD -d 10.9.9.0/25 -j B-chain
-A FORWARD -s 10.0.0.0/6 -g A
-A FORWARD -m conntrack --ctstate INVALID -j DROP
-A FORWARD -m conntrack ! --ctstate NEW,RELATED,ESTABLISHED -j DROP
-A FORWARD -m addrtype --src-type LOCAL,BROADCAST ! --dst-type UNICAST --limit-iface-in -j ACCEPT
-A FORWARD -m comment --comment plain-comment_1 -j ACCEPT
-A FORWARD -p tcp -m comment --comment "a \"quoted\" one's" -m tcp --dport 443 -j ACCEPT
-A FORWARD -i lo
-A A -j RETURN
COMMIT
*nat
:PREROUTING ACCEPT [5:300]
:POSTROUTING ACCEPT [0:0]
:DOCKER - [0:0]
-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER
-A DOCKER -d 127.0.0.1/32 ! -i docker0 -p tcp -m tcp --dport 9090 -j DNAT --to-destination 172.17.0.3:80
-A DOCKER -p udp -m udp --dport 5000:5010 -j DNAT --to-destination 172.17.0.4:5000-5010
-A DOCKER -p tcp -j DNAT --to-destination 172.17.0.5
-A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE
COMMIT
*raw
:PREROUTING ACCEPT [0:0]
-A PREROUTING -d 172.17.0.2/32 ! -i docker0 -j DROP
COMMIT
*mangle
:FORWARD ACCEPT [0:0]
:X - [0:0]
-A FORWARD -j X
COMMIT
`
	restoreIn(t, path, IPv4, v4)
	sameAsSave(t, path, IPv4, "IPv4 forms")
	v6 := `*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:DOCKER - [0:0]
-A INPUT -s fd00:1::/64 ! -d 2001:db8::1/128 -j ACCEPT
-A INPUT -d fe80::/10 -j DROP
-A FORWARD -d fd00::2/128 ! -i docker0 -o docker0 -p tcp -m tcp --dport 80 -j ACCEPT
-A FORWARD -o docker0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:DOCKER - [0:0]
-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER
-A OUTPUT ! -d ::1/128 -m addrtype --dst-type LOCAL -j DOCKER
-A DOCKER ! -i docker0 -p tcp -m tcp --dport 8080 -j DNAT --to-destination [fd00::2]:80
-A DOCKER ! -i docker0 -p tcp -m tcp --dport 8081 -j DNAT --to-destination fd00::3
-A POSTROUTING -s fd00::/64 ! -o docker0 -j MASQUERADE
COMMIT
`
	restoreIn(t, path, IPv6, v6)
	sameAsSave(t, path, IPv6, "IPv6 forms")

	// A table without chains, a built-in chain iptables-nft has not made
	// yet (printed as an empty ACCEPT chain) and a table that is not
	// iptables-nft's (left out).
	run(t, "nsenter", "--net="+path, "nft", "flush", "ruleset")
	run(t, "nsenter", "--net="+path, "nft", "add table ip filter; add table ip docker-bridges; add chain ip docker-bridges x")
	restoreIn(t, path, IPv4, "*nat\n:POSTROUTING ACCEPT [0:0]\n-A POSTROUTING -j MASQUERADE\nCOMMIT\n")
	sameAsSave(t, path, IPv4, "partial tables")

	// Only tables that are not iptables-nft's (Docker 29's nftables
	// backend): the tool prints nothing, and so does the reader.
	run(t, "nsenter", "--net="+path, "nft", "flush", "ruleset")
	run(t, "nsenter", "--net="+path, "nft", "add table ip docker-bridges; add chain ip docker-bridges filter-forward { type filter hook forward priority filter; }")
	sameAsSave(t, path, IPv4, "no iptables-nft table")
	if out, err := readIn(path, IPv4); err != nil || len(out) != 0 {
		t.Errorf("no iptables-nft table: %q, %v; want nothing", out, err)
	}
}

// TestNftSaveDeclinesWhatItDoesNotKnow: a match or target it does not
// print, or a table nft made, is errNftSaveUnknown (the caller then runs
// iptables-nft-save), never a wrong line.
func TestNftSaveDeclinesWhatItDoesNotKnow(t *testing.T) {
	_, path := scratchNS(t, "unk")
	for _, rule := range []string{
		"-A INPUT -p tcp -m multiport --dports 80,443 -j ACCEPT",
		"-A INPUT -p tcp -m tcp --tcp-flags SYN,RST SYN -j ACCEPT",
		"-A INPUT -m mark --mark 0x1 -j ACCEPT",
		"-A INPUT -j LOG --log-prefix x",
		"-A INPUT -p 47 -j ACCEPT",
		"-A INPUT -m conntrack --ctstatus ASSURED -j ACCEPT",
	} {
		run(t, "nsenter", "--net="+path, "nft", "flush", "ruleset")
		restoreIn(t, path, IPv4, "*filter\n:INPUT ACCEPT [0:0]\n"+rule+"\nCOMMIT\n")
		if out, err := readIn(path, IPv4); !errors.Is(err, errNftSaveUnknown) {
			t.Errorf("%s: want errNftSaveUnknown, got %v\n%s", rule, err, out)
		}
	}
	run(t, "nsenter", "--net="+path, "nft", "flush", "ruleset")
	run(t, "nsenter", "--net="+path, "nft", "add table ip filter; add chain ip filter INPUT { type filter hook input priority 0; }; add rule ip filter INPUT tcp dport 22 ct state new log accept")
	if out, err := readIn(path, IPv4); !errors.Is(err, errNftSaveUnknown) {
		t.Errorf("a rule nft wrote: want errNftSaveUnknown, got %v\n%s", err, out)
	}
}

// TestNftSaveIsConsistentUnderChurn reads while another process keeps
// committing rules: one rule to chain A, then one to chain B, and again.
// At every moment A holds as many rules as B or one more, and so must
// every read, although its chains are dumped one by one: a read that
// straddles a commit is retried (the ruleset's generation changed), never
// returned.
func TestNftSaveIsConsistentUnderChurn(t *testing.T) {
	_, path := scratchNS(t, "churn")
	restoreIn(t, path, IPv4, "*filter\n:INPUT ACCEPT [0:0]\n:A - [0:0]\n:B - [0:0]\nCOMMIT\n")
	// Filler rules make each chain's dump take many batches.
	var fill strings.Builder
	fill.WriteString("*filter\n")
	for i := range 3000 {
		fmt.Fprintf(&fill, "-A INPUT -s 10.%d.%d.%d/32 -j DROP\n", i/65536, (i/256)%256, i%256)
	}
	fill.WriteString("COMMIT\n")
	cmd := exec.Command("nsenter", "--net="+path, "iptables-nft-restore", "--noflush")
	cmd.Stdin = strings.NewReader(fill.String())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("filling: %v\n%s", err, out)
	}
	stop := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		// One iptables-nft-restore, fed a commit at a time: each COMMIT
		// is one transaction.
		w := exec.Command("nsenter", "--net="+path, "iptables-nft-restore", "--noflush")
		in, err := w.StdinPipe()
		if err != nil {
			done <- err
			return
		}
		if err := w.Start(); err != nil {
			done <- err
			return
		}
		for i := 0; ; i++ {
			select {
			case <-stop:
				in.Close()
				done <- w.Wait()
				return
			default:
			}
			fmt.Fprintf(in, "*filter\n-A A -d 10.200.%d.%d/32 -j ACCEPT\nCOMMIT\n*filter\n-A B -d 10.201.%d.%d/32 -j ACCEPT\nCOMMIT\n", (i/256)%256, i%256, (i/256)%256, i%256)
			// A pace, not a wait: a pair of commits every few
			// milliseconds, so that some reads fall between them (back
			// to back, nearly every read straddles one).
			time.Sleep(3 * time.Millisecond)
		}
	}()
	reads, retried := 0, 0
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		out, err := readIn(path, IPv4)
		if errors.Is(err, errDumpInterrupted) {
			retried++
			continue
		}
		if err != nil {
			close(stop)
			t.Fatal(err)
		}
		a, b := strings.Count(string(out), "-A A "), strings.Count(string(out), "-A B ")
		if a != b && a != b+1 {
			close(stop)
			t.Fatalf("read %d is no state the ruleset was in: chain A has %d rules, B %d", reads, a, b)
		}
		reads++
	}
	close(stop)
	if err := <-done; err != nil {
		t.Fatalf("the writer: %v", err)
	}
	if reads == 0 {
		t.Fatalf("no read succeeded (%d gave up after retries)", retried)
	}
	t.Logf("%d consistent reads, %d gave up after 3 tries", reads, retried)
}
