package repair

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/iptscope/iptscope/diagnose"
	"github.com/iptscope/iptscope/parse/nft"
	"github.com/iptscope/iptscope/snapshot"
)

// nftFixture is a broken capture behind the fake nft, whose pool knows
// the rules of the healthy capture of the same host.
func nftFixture(t *testing.T, dir string) (*snapshot.Snapshot, *diagnose.Plan, *fakeNft) {
	t.Helper()
	s, p := loadFixture(t, dir)
	f := newFakeNft(s)
	healthy, _ := loadFixture(t, dir[:strings.Index(dir, "-nft-")+1]+"healthy") // docker-29-nftables-proxy-off-healthy
	f.learn(healthy)
	return s, p, f
}

// TestNftFixIsOneCheckedTransactionOnDockersTable: a lost DNAT on the
// nftables backend is repaired with nft -c, a backup of Docker's table
// only, a read of the touched chain, one nft -f that echoes the handles,
// and a re-read; nothing else is run.
func TestNftFixIsOneCheckedTransactionOnDockersTable(t *testing.T) {
	_, p, f := nftFixture(t, "docker-29-nftables-proxy-off-nft-dnat-deleted")
	pls := Render(p)
	if len(pls) != 1 || pls[0].Table != diagnose.NftDockerTable {
		t.Fatalf("payloads %+v, want one for docker-bridges", pls)
	}
	script := pls[0].Text
	if !strings.Contains(script, `rule ip docker-bridges nat-prerouting-and-output `) || !strings.Contains(script, `tcp dport 8080 counter dnat to 172.17.0.2:80 comment "DNAT"`) {
		t.Errorf("the DNAT is not written as Docker writes it:\n%s", script)
	}
	for _, l := range strings.Split(strings.TrimSpace(script), "\n") {
		if !strings.Contains(l, " docker-bridges ") || strings.HasPrefix(l, "delete") || strings.HasPrefix(l, "flush") {
			t.Errorf("a command that is not an addition to Docker's table: %s", l)
		}
	}
	saved := f.text(nft.FamilyIP)
	o := testOptions(t, f)
	o.Recheck = func(context.Context) ([]diagnose.Finding, error) { return nil, nil }
	res, err := Apply(context.Background(), p, o)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"nft -c -f -", "nft list table ip docker-bridges", "nft -j list table ip docker-bridges", "nft --echo --handle -f -"}
	if !slices.Equal(f.calls, want) {
		t.Errorf("commands:\n  %s\nwant:\n  %s", strings.Join(f.calls, "\n  "), strings.Join(want, "\n  "))
	}
	// Applied: the plan, its rule placed after the chain's last rule by
	// handle (a chain Docker rewrote meanwhile makes nft refuse it).
	anchored := strings.Replace(script, "nat-prerouting-and-output ", "nat-prerouting-and-output position ", 1)
	if len(f.scripts) != 2 || f.scripts[0] != script || !strings.HasPrefix(f.scripts[1], strings.SplitN(anchored, " position ", 2)[0]+" position ") ||
		!strings.HasSuffix(f.scripts[1], ` tcp dport 8080 counter dnat to 172.17.0.2:80 comment "DNAT"`+"\n") {
		t.Errorf("scripts %q, want the plan's checked and applied after the chain's last handle", f.scripts)
	}
	b, err := os.ReadFile(res.BackupPath)
	if err != nil || !strings.Contains(string(b), "# backend: nftables\n") || !strings.Contains(string(b), "# section: ipv4 docker-bridges\n"+saved) ||
		!strings.Contains(string(b), "# plan: "+strings.TrimSpace(script)) || !strings.Contains(string(b), "# tables: ipv4 docker-bridges\n") {
		t.Errorf("backup %q: %v\n%s", res.BackupPath, err, b)
	}
}

// TestNftFixRollsBackWhenTheFindingRemains: the re-read still shows the
// finding: the rule the repair added is deleted by its handle, and only
// it (the table is never restored whole over Docker's changes).
func TestNftFixRollsBackWhenTheFindingRemains(t *testing.T) {
	s, p, f := nftFixture(t, "docker-29-nftables-proxy-off-nft-dnat-deleted")
	before := string(f.json(nft.FamilyIP))
	o := testOptions(t, f)
	o.Recheck = func(context.Context) ([]diagnose.Finding, error) {
		return diagnose.Run(s, diagnose.Options{}), nil // nothing changed
	}
	_, err := Apply(context.Background(), p, o)
	if err == nil || !strings.Contains(err.Error(), "still there: dnat-missing") || !strings.Contains(err.Error(), "rolled back") {
		t.Fatalf("err %v", err)
	}
	undo := f.scripts[len(f.scripts)-1]
	if !strings.HasPrefix(undo, "delete rule ip docker-bridges nat-prerouting-and-output handle ") || strings.Count(undo, "\n") != 1 {
		t.Errorf("undo %q, want the one rule deleted by handle", undo)
	}
	if after := string(f.json(nft.FamilyIP)); after != before {
		t.Errorf("table after the rollback:\n%s\nwant:\n%s", after, before)
	}
}

// TestNftDeletedTableIsRebuiltAndRestoreDeletesIt: a deleted table is
// rebuilt whole; its backup is an empty section, which restore turns into
// deleting what the repair created.
func TestNftDeletedTableIsRebuiltAndRestoreDeletesIt(t *testing.T) {
	_, p, f := nftFixture(t, "docker-29-nftables-proxy-off-nft-table-deleted")
	script := Render(p)[0].Text
	for _, want := range []string{"add table ip docker-bridges\n", "add map ip docker-bridges filter-forward-in-jumps { type ifname : verdict; }",
		"add chain ip docker-bridges filter-FORWARD { type filter hook forward priority 0; policy accept; }",
		`add element ip docker-bridges filter-forward-in-jumps { "docker0" : jump filter-forward-in__docker0 }`,
		"add rule ip docker-bridges filter-FORWARD oifname vmap @filter-forward-in-jumps"} {
		if !strings.Contains(script, want) {
			t.Errorf("the rebuild lacks %q", want)
		}
	}
	o := testOptions(t, f)
	res, err := Apply(context.Background(), p, o)
	if err != nil {
		t.Fatal(err)
	}
	if f.fams[nft.FamilyIP] == nil {
		t.Fatal("no table after the rebuild")
	}
	tables, err := Restore(context.Background(), res.BackupPath, o)
	if err != nil || len(tables) != 1 || tables[0] != "ipv4 docker-bridges" {
		t.Errorf("restore: %v %v", tables, err)
	}
	if f.scripts[len(f.scripts)-1] != "add table ip docker-bridges\ndelete table ip docker-bridges\n" || f.fams[nft.FamilyIP] != nil {
		t.Errorf("restore ran %q; table left: %v", f.scripts[len(f.scripts)-1], f.fams[nft.FamilyIP] != nil)
	}
}

// TestNftFixVerifiesWithTheFreshRead: doctor passes Reread (not Recheck);
// its findings decide too.
func TestNftFixVerifiesWithTheFreshRead(t *testing.T) {
	s, p, f := nftFixture(t, "docker-29-nftables-proxy-off-nft-dnat-deleted")
	o := testOptions(t, f)
	o.Reread = func(context.Context) (*snapshot.Snapshot, []diagnose.Finding, error) {
		return s, diagnose.Run(s, diagnose.Options{}), nil // nothing changed
	}
	if _, err := Apply(context.Background(), p, o); err == nil || !strings.Contains(err.Error(), "still there: dnat-missing") {
		t.Fatalf("err %v", err)
	}
	if last := f.scripts[len(f.scripts)-1]; !strings.HasPrefix(last, "delete rule ") {
		t.Errorf("last script %q, want the undo by handle", last)
	}
}

// TestNftCheckRunsNftCheckOnly: Check of an nftables plan asks nft, not
// iptables-restore, and changes nothing.
func TestNftCheckRunsNftCheckOnly(t *testing.T) {
	_, p, f := nftFixture(t, "docker-29-nftables-proxy-off-nft-dnat-deleted")
	before := string(f.json(nft.FamilyIP))
	if _, err := Check(context.Background(), p, testOptions(t, f)); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(f.calls, []string{"nft -c -f -"}) || string(f.json(nft.FamilyIP)) != before {
		t.Errorf("calls %v; table changed: %v", f.calls, string(f.json(nft.FamilyIP)) != before)
	}
}

// TestHandlesFromARealEcho: what nft 1.0.6 (Debian 12) printed for an
// insert and an add placed by handle, with --echo --handle, gives each
// rule its new handle.
func TestHandlesFromARealEcho(t *testing.T) {
	echo := `insert rule ip docker-bridges nat-prerouting-and-output handle 4 tcp dport 9000 counter packets 0 bytes 0 dnat to 172.17.0.9:80 comment "DNAT" # handle 8
add rule ip docker-bridges nat-prerouting-and-output tcp dport 9001 counter packets 0 bytes 0 dnat to 172.17.0.9:81 comment "DNAT" # handle 9
add element ip docker-bridges filter-forward-in-jumps { "docker0" : jump filter-forward-in__docker0 }
# new generation 3 by process 22917 (nft)
`
	var todo []nftCmd
	for _, s := range []string{
		`insert rule ip docker-bridges nat-prerouting-and-output position 5 tcp dport 9000 counter dnat to 172.17.0.9:80 comment "DNAT"`,
		`add rule ip docker-bridges nat-prerouting-and-output position 5 tcp dport 9001 counter dnat to 172.17.0.9:81 comment "DNAT"`,
		`add element ip docker-bridges filter-forward-in-jumps { "docker0" : jump filter-forward-in__docker0 }`,
	} {
		c, err := parseNftCmd(diagnose.Op{Kind: diagnose.OpNft, Family: snapshot.FamilyIPv4, Table: diagnose.NftDockerTable, Spec: s})
		if err != nil {
			t.Fatal(err)
		}
		todo = append(todo, c)
	}
	added, ok := handlesFromEcho(todo, echo)
	if !ok || len(added) != 3 || added[0].handle != 8 || added[1].handle != 9 || added[2].cmd.key != "docker0" {
		t.Errorf("handles %+v (ok %v), want 8 and 9 and the element", added, ok)
	}
	if got := todo[1].line(); got != `add rule ip docker-bridges nat-prerouting-and-output position 5 tcp dport 9001 counter dnat to 172.17.0.9:81 comment "DNAT"` {
		t.Errorf("line %q", got)
	}
}

// TestNftCommandsPrintBackAsPlanned: every nftables operation of every
// Docker 29 nftables fixture's plan parses and prints back exactly as
// planned (what Apply writes is the plan's text, a position aside).
func TestNftCommandsPrintBackAsPlanned(t *testing.T) {
	dirs, _ := filepath.Glob("../fixtures/docker-29-nftables-*")
	n := 0
	for _, d := range dirs {
		_, p := loadFixture(t, filepath.Base(d))
		for _, op := range p.NftOps(nft.FamilyIP) {
			c, err := parseNftCmd(op)
			if err != nil {
				t.Errorf("%s: %v", filepath.Base(d), err)
				continue
			}
			if c.line() != op.Spec {
				t.Errorf("%s: printed back %q, planned %q", filepath.Base(d), c.line(), op.Spec)
			}
			n++
		}
	}
	if n < 50 {
		t.Errorf("only %d nftables operations in the fixtures' plans", n)
	}
}
