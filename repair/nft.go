package repair

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/iptscope/iptscope/diagnose"
	"github.com/iptscope/iptscope/parse/nft"
	"github.com/iptscope/iptscope/snapshot"
)

// NftBackend is the backend a backup of Docker's nftables table records
// ("# backend: nftables"); its sections are "ipv4 docker-bridges" and
// "ipv6 docker-bridges", each `nft list table` text (empty: the table did
// not exist).
const NftBackend = "nftables"

// renderNft gives one payload per family holding the plan's nftables
// commands (the `nft -f` text); Apply runs them all in one transaction.
func renderNft(p *diagnose.Plan) []Payload {
	var out []Payload
	for _, fam := range []nft.Family{nft.FamilyIP, nft.FamilyIP6} {
		if text := p.NftScript(fam); text != "" {
			out = append(out, Payload{Family: nftSnapFamily(fam), Table: diagnose.NftDockerTable, Text: text})
		}
	}
	return out
}

func nftSnapFamily(f nft.Family) string {
	if f == nft.FamilyIP6 {
		return snapshot.FamilyIPv6
	}
	return snapshot.FamilyIPv4
}

func nftFamilyOf(family string) nft.Family {
	if family == snapshot.FamilyIPv6 {
		return nft.FamilyIP6
	}
	return nft.FamilyIP
}

// isNftPayload tells the nftables payloads from iptables-restore ones.
func isNftPayload(pl Payload) bool { return pl.Table == diagnose.NftDockerTable }

// backupNft saves Docker's table of every touched family with `nft list
// table` (an absent table is an empty section) into a backup file that
// `iptscope restore` reads, with the header of an iptables backup (time,
// families, tables, the plan's operations), written atomically and pruned
// as those are.
func (a *applier) backupNft(ctx context.Context, fams []nft.Family) (*backupFile, error) {
	now := time.Now
	if a.o.Now != nil {
		now = a.o.Now
	}
	dir := a.o.BackupDir
	if dir == "" {
		dir = DefaultBackupDir
	}
	t := now().UTC()
	b := &backupFile{backend: NftBackend, netns: a.o.NetNS, time: t.Format(time.RFC3339Nano), sections: map[string]string{}}
	name := t.Format("20060102T150405.000000000Z") + "-" + nsTag(a.o.NetNS)
	if a.round > 0 {
		name += fmt.Sprintf(".r%d", a.round+1)
	}
	b.path = filepath.Join(dir, name+".rules")
	for _, f := range fams {
		b.families = append(b.families, nftSnapFamily(f))
		b.tables = append(b.tables, nftSnapFamily(f)+" "+diagnose.NftDockerTable)
	}
	for _, op := range a.plan.Ops {
		if op.Kind == diagnose.OpSysctl {
			b.plan = append(b.plan, fmt.Sprintf("sysctl %s=%s (was %s)", op.Name, op.Value, op.Old))
		} else {
			b.plan = append(b.plan, op.Spec)
		}
	}
	var text strings.Builder
	fmt.Fprintf(&text, "# iptscope backup\n# time: %s\n# netns: %s\n# backend: %s\n# families: %s\n# tables: %s\n",
		b.time, oneLine(a.o.NetNS), NftBackend, strings.Join(b.families, ","), strings.Join(b.tables, ", "))
	for _, l := range b.plan {
		text.WriteString("# plan: " + oneLine(l) + "\n")
	}
	for _, fam := range fams {
		out, err := a.run(ctx, "nft", []string{"list", "table", string(fam), diagnose.NftDockerTable}, nil)
		if err != nil {
			if !nftNoSuchTable(err) {
				return nil, fmt.Errorf("backing up table %s %s: %w", fam, diagnose.NftDockerTable, err)
			}
			out = nil // absent: restored by deleting what the repair created
		}
		key := nftSnapFamily(fam) + " " + diagnose.NftDockerTable
		b.sections[key] = string(out)
		b.order = append(b.order, key)
		fmt.Fprintf(&text, "%s%s\n%s", sectionMarker, key, out)
	}
	write := a.o.WriteFile
	if write == nil {
		write = writeFileAtomic
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating the backup folder %s: %w", dir, err)
	}
	if err := write(b.path, []byte(text.String()), 0o600); err != nil {
		return nil, fmt.Errorf("writing the backup %s: %w", b.path, err)
	}
	if _, err := Prune(dir, a.o.NetNS, a.o.KeepBackups); err != nil {
		fmt.Fprintf(a.out, "warning: pruning old backups: %v\n", err)
	}
	return b, nil
}

// nftNoSuchTable reports whether nft failed because the table is absent
// (nft 1.0: "Error: No such file or directory").
func nftNoSuchTable(err error) bool {
	return strings.Contains(strings.ToLower(err.Error()), "no such file or directory")
}

// restoreNft puts Docker's tables back from a backup in one `nft -f`
// transaction: each table is deleted (after an `add table`, so that an
// absent one is no error) and, when it existed, re-created from its
// `nft list table` text. Only the backup's docker-bridges tables are
// named.
func (a *applier) restoreNft(ctx context.Context, sections map[string]string, order []string) error {
	var b strings.Builder
	for _, k := range order {
		fam, t, _ := strings.Cut(k, " ")
		if t != diagnose.NftDockerTable {
			return fmt.Errorf("backup section %q: not Docker's nftables table", k)
		}
		f := nftFamilyOf(fam)
		fmt.Fprintf(&b, "add table %s %s\ndelete table %s %s\n", f, t, f, t)
		b.WriteString(sections[k])
	}
	if _, err := a.run(ctx, "nft", []string{"-f", "-"}, []byte(b.String())); err != nil {
		return fmt.Errorf("restoring with nft -f: %w", err)
	}
	return nil
}

// isNftBackup reports whether a backup holds Docker's nftables tables.
func (b *backupFile) isNft() bool { return b.backend == NftBackend }
