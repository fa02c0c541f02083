package repair

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/iptscope/iptscope/collect"
	"github.com/iptscope/iptscope/diagnose"
)

const savedNftTable = "table ip docker-bridges {\n\tchain nat-prerouting-and-output {\n\t}\n}\n"

// TestNftFixIsOneCheckedTransactionOnDockersTable: a lost DNAT on the
// nftables backend is repaired with nft -c, a backup of Docker's table
// only, one nft -f, and a re-read; nothing else is run.
func TestNftFixIsOneCheckedTransactionOnDockersTable(t *testing.T) {
	_, p := loadFixture(t, "docker-29-nftables-proxy-off-nft-dnat-deleted")
	pls := Render(p)
	if len(pls) != 1 || pls[0].Table != diagnose.NftDockerTable {
		t.Fatalf("payloads %+v, want one for docker-bridges", pls)
	}
	script := pls[0].Text
	if !strings.Contains(script, `add rule ip docker-bridges nat-prerouting-and-output tcp dport 8080 counter dnat to 172.17.0.2:80 comment "DNAT"`) {
		t.Errorf("the DNAT is not written as Docker writes it:\n%s", script)
	}
	for _, l := range strings.Split(strings.TrimSpace(script), "\n") {
		if !strings.Contains(l, " docker-bridges ") || strings.HasPrefix(l, "delete") || strings.HasPrefix(l, "flush") {
			t.Errorf("a command that is not an addition to Docker's table: %s", l)
		}
	}
	f := &collect.FakeRunner{Script: []collect.Call{
		{Name: "nft", Args: []string{"-c", "-f", "-"}, Stdin: script},
		{Name: "nft", Args: []string{"list", "table", "ip", "docker-bridges"}, Stdout: savedNftTable},
		{Name: "nft", Args: []string{"-f", "-"}, Stdin: script},
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
	b, err := os.ReadFile(res.BackupPath)
	if err != nil || !strings.Contains(string(b), "# backend: nftables\n# section: ipv4 docker-bridges\n"+savedNftTable) {
		t.Errorf("backup %q: %v\n%s", res.BackupPath, err, b)
	}
}

// TestNftFixRollsBackWhenTheFindingRemains: the re-read still shows the
// finding: Docker's table is put back from the backup in one nft -f.
func TestNftFixRollsBackWhenTheFindingRemains(t *testing.T) {
	s, p := loadFixture(t, "docker-29-nftables-proxy-off-nft-dnat-deleted")
	script := Render(p)[0].Text
	restore := "add table ip docker-bridges\ndelete table ip docker-bridges\n" + savedNftTable
	f := &collect.FakeRunner{Script: []collect.Call{
		{Name: "nft", Args: []string{"-c", "-f", "-"}, Stdin: script},
		{Name: "nft", Args: []string{"list", "table", "ip", "docker-bridges"}, Stdout: savedNftTable},
		{Name: "nft", Args: []string{"-f", "-"}, Stdin: script},
		{Name: "nft", Args: []string{"-f", "-"}, Stdin: restore},
	}}
	o := testOptions(t, f)
	o.Recheck = func(context.Context) ([]diagnose.Finding, error) {
		return diagnose.Run(s, diagnose.Options{}), nil // nothing changed
	}
	_, err := Apply(context.Background(), p, o)
	if err == nil || !strings.Contains(err.Error(), "still there: dnat-missing") || !strings.Contains(err.Error(), "rolled back") {
		t.Fatalf("err %v", err)
	}
	if err := f.Done(); err != nil {
		t.Error(err)
	}
}

// TestNftDeletedTableIsRebuiltAndRestoreDeletesIt: a deleted table is
// rebuilt whole; its backup is an empty section, which restore turns into
// deleting what the repair created.
func TestNftDeletedTableIsRebuiltAndRestoreDeletesIt(t *testing.T) {
	_, p := loadFixture(t, "docker-29-nftables-proxy-off-nft-table-deleted")
	script := Render(p)[0].Text
	for _, want := range []string{"add table ip docker-bridges\n", "add map ip docker-bridges filter-forward-in-jumps { type ifname : verdict; }",
		"add chain ip docker-bridges filter-FORWARD { type filter hook forward priority 0; policy accept; }",
		`add element ip docker-bridges filter-forward-in-jumps { "docker0" : jump filter-forward-in__docker0 }`,
		"add rule ip docker-bridges filter-FORWARD oifname vmap @filter-forward-in-jumps"} {
		if !strings.Contains(script, want) {
			t.Errorf("the rebuild lacks %q", want)
		}
	}
	f := &collect.FakeRunner{Script: []collect.Call{
		{Name: "nft", Args: []string{"-c", "-f", "-"}, Stdin: script},
		{Name: "nft", Args: []string{"list", "table", "ip", "docker-bridges"}, Err: &collect.ExitError{Cmd: "nft list table", Code: 1, Stderr: "Error: No such file or directory"}},
		{Name: "nft", Args: []string{"-f", "-"}, Stdin: script},
		{Name: "nft", Args: []string{"-f", "-"}, Stdin: "add table ip docker-bridges\ndelete table ip docker-bridges\n"},
	}}
	o := testOptions(t, f)
	res, err := Apply(context.Background(), p, o)
	if err != nil {
		t.Fatal(err)
	}
	tables, err := Restore(context.Background(), res.BackupPath, o)
	if err != nil || len(tables) != 1 || tables[0] != "ipv4 docker-bridges" {
		t.Errorf("restore: %v %v", tables, err)
	}
	if err := f.Done(); err != nil {
		t.Error(err)
	}
}
