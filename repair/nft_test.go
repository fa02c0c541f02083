package repair

import (
	"context"
	"os"
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
