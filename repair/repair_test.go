package repair

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/iptscope/iptscope/collect"
	"github.com/iptscope/iptscope/diagnose"
	"github.com/iptscope/iptscope/snapshot"
)

func loadFixture(t *testing.T, dir string) (*snapshot.Snapshot, *diagnose.Plan) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("../fixtures", dir, "bundle.json"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := snapshot.Load(data)
	if err != nil {
		t.Fatal(err)
	}
	return s, diagnose.NewPlan(s, diagnose.Run(s, diagnose.Options{}))
}

func testOptions(t *testing.T, r collect.Runner) Options {
	return Options{
		Runner:        r,
		BackupDir:     t.TempDir(),
		SkipRootCheck: true,
		LookPath:      func(s string) (string, error) { return "/usr/sbin/" + s, nil },
		Now:           func() time.Time { return time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC) },
		WriteSysctl:   func(_, _, _ string) error { return nil },
	}
}

const savedNAT = "*nat\n:PREROUTING ACCEPT [0:0]\n:DOCKER - [0:0]\n-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER\nCOMMIT\n"

func TestRenderDeclaresOnlyChainsThatDoNotExist(t *testing.T) {
	_, p := loadFixture(t, "docker-28.5-nft-proxy-off-nat-docker-flushed")
	pls := Render(p)
	if len(pls) != 1 || pls[0].Table != "nat" {
		t.Fatalf("payloads %+v, want one nat payload", pls)
	}
	if strings.Contains(pls[0].Text, ":DOCKER") {
		t.Errorf("nat DOCKER exists: declaring it with --noflush would flush it:\n%s", pls[0].Text)
	}
	if !strings.HasPrefix(pls[0].Text, "*nat\n") || !strings.HasSuffix(pls[0].Text, "COMMIT\n") {
		t.Errorf("payload framing:\n%s", pls[0].Text)
	}
	_, p = loadFixture(t, "docker-28.5-nft-proxy-off-nat-docker-deleted")
	if txt := Render(p)[0].Text; !strings.Contains(txt, "\n:DOCKER - [0:0]\n") {
		t.Errorf("a deleted nat DOCKER is not declared:\n%s", txt)
	}
}

func TestApplyTestsBacksUpAppliesAndVerifies(t *testing.T) {
	_, p := loadFixture(t, "docker-20.10-nft-proxy-off-nat-docker-flushed")
	payload := Render(p)[0].Text
	f := &collect.FakeRunner{Script: []collect.Call{
		{Name: "iptables-nft-restore", Args: []string{"-w", "5", "--test", "--noflush"}, Stdin: payload},
		{Name: "iptables-nft-save", Args: []string{"-t", "nat"}, Stdout: savedNAT},
		{Name: "iptables-nft-restore", Args: []string{"-w", "5", "--noflush"}, Stdin: payload},
	}}
	o := testOptions(t, f)
	o.Recheck = func(context.Context) ([]diagnose.Finding, error) { return nil, nil }
	res, err := Apply(context.Background(), p, o)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Done(); err != nil {
		t.Error(err)
	}
	want := filepath.Join(o.BackupDir, "20250102T030405.000000000Z-host.rules")
	if res.BackupPath != want {
		t.Errorf("backup %s, want %s", res.BackupPath, want)
	}
	b, err := ReadBackup(res.BackupPath)
	if err != nil {
		t.Fatal(err)
	}
	if b.backend != "nft" || b.sections["ipv4 nat"] != savedNAT {
		t.Errorf("backup read back as %+v", b)
	}
}

func TestARefusedPayloadChangesNothingAndShowsTheLine(t *testing.T) {
	_, p := loadFixture(t, "docker-20.10-nft-proxy-off-nat-docker-flushed")
	f := &collect.FakeRunner{Script: []collect.Call{
		{Name: "iptables-nft-restore", Args: []string{"-w", "5", "--test", "--noflush"},
			Err: &collect.ExitError{Cmd: "iptables-nft-restore", Code: 1, Stderr: "iptables-nft-restore: line 4 failed\n"}},
	}}
	_, err := Apply(context.Background(), p, testOptions(t, f))
	var pe *PayloadError
	if !errors.As(err, &pe) || pe.Line != 4 {
		t.Fatalf("err %v, want a PayloadError at line 4", err)
	}
	if !strings.Contains(pe.Context, ">>   4  ") || strings.Count(pe.Context, "\n") != 6 {
		t.Errorf("context should mark line 4 with three lines either side:\n%s", pe.Context)
	}
	if err := f.Done(); err != nil {
		t.Error(err)
	}
}

func TestAnEmptyPlanRunsNothing(t *testing.T) {
	_, p := loadFixture(t, "docker-28.5-legacy-proxy-on-healthy")
	f := &collect.FakeRunner{}
	if _, err := Apply(context.Background(), p, testOptions(t, f)); !errors.Is(err, ErrNothingToRepair) {
		t.Fatalf("err %v, want ErrNothingToRepair", err)
	}
}

func TestIPForwardIsSetAndPersistedOnlyInTheInitialNamespace(t *testing.T) {
	_, p := loadFixture(t, "docker-28.5-legacy-proxy-on-ip-forward-off")
	for _, isInit := range []bool{true, false} {
		var wrote []string
		o := testOptions(t, &collect.FakeRunner{})
		o.Persist, o.PersistPath = true, filepath.Join(t.TempDir(), "99.conf")
		o.WriteSysctl = func(_, n, v string) error { wrote = append(wrote, n+"="+v); return nil }
		o.IsInitNetNS = func(string) (bool, error) { return isInit, nil }
		res, err := Apply(context.Background(), p, o)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Join(wrote, ",") != "net.ipv4.ip_forward=1" {
			t.Errorf("sysctl writes %v", wrote)
		}
		data, _ := os.ReadFile(o.PersistPath)
		if isInit != strings.Contains(string(data), "net.ipv4.ip_forward = 1") || isInit != (res.Persisted != "") || isInit == (res.PersistNote != "") {
			t.Errorf("initial ns %v: persisted %q, note %q, file %q", isInit, res.Persisted, res.PersistNote, data)
		}
	}
}

func TestRestorePutsEachTableBack(t *testing.T) {
	path := filepath.Join(t.TempDir(), "b.rules")
	os.WriteFile(path, []byte("# iptscope backup\n# netns: h1\n# backend: legacy\n# section: ipv4 nat\n"+savedNAT), 0o600)
	f := &collect.FakeRunner{Script: []collect.Call{
		{Name: "iptables-legacy-restore", Args: []string{"-w", "5"}, Stdin: savedNAT},
	}}
	o := testOptions(t, f)
	o.NetNS = "" // use the recorded one... but tests cannot enter h1:
	o.NetNS = "/proc/self/ns/net"
	tables, err := Restore(context.Background(), path, o)
	if err != nil || strings.Join(tables, ",") != "ipv4 nat" {
		t.Fatalf("tables %v, err %v", tables, err)
	}
	if err := f.Done(); err != nil {
		t.Error(err)
	}
	if _, err := ReadBackup(filepath.Join("..", "go.mod")); err == nil {
		t.Error("go.mod read as a backup")
	}
}
