package repair

import (
	"context"
	"errors"
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

// applyNft is Apply for a plan that changes Docker's nftables table (a
// host whose Docker uses its nftables backend): check the transaction
// with `nft -c -f -`, back up the touched tables with `nft list table`,
// apply everything in one `nft -f -` transaction (atomic: all or
// nothing), set the plan's sysctls, re-read and verify by finding key,
// and on disagreement put the tables back (delete and re-create them from
// the backup, one transaction) and the sysctls. Only table docker-bridges
// is ever named.
func applyNft(ctx context.Context, p *diagnose.Plan, o Options) (*Result, error) {
	a := newApplier(p, o)
	var payloads []Payload
	for _, pl := range Render(p) {
		if !isNftPayload(pl) {
			return nil, fmt.Errorf("the plan changes iptables and nftables tables at once: not applied")
		}
		payloads = append(payloads, pl)
	}
	res := &Result{Sysctls: p.SysctlOps(), Payloads: payloads}
	script := ""
	for _, pl := range payloads {
		script += pl.Text
	}
	if script != "" {
		if _, err := a.run(ctx, "nft", []string{"-c", "-f", "-"}, []byte(script)); err != nil {
			return nil, fmt.Errorf("checking the nftables transaction: %w\n%s", err, script)
		}
		b, err := a.backupNft(ctx, payloads)
		if err != nil {
			return nil, err
		}
		res.BackupPath = b.path
		fmt.Fprintf(a.out, "backup of the touched tables: %s\n", b.path)
		applied := false
		rollback := func(cause error) error {
			var errs []error
			if applied {
				if err := a.restoreNft(ctx, b.sections, b.order); err != nil {
					errs = append(errs, fmt.Errorf("rolling back the nftables tables: %w (restore by hand: iptscope restore %s)", err, b.path))
				}
			}
			for _, s := range res.Sysctls {
				if err := a.writeSysctl(s.Name, s.Old); err != nil {
					errs = append(errs, fmt.Errorf("setting %s back to %s: %w", s.Name, s.Old, err))
				}
			}
			if len(errs) > 0 {
				return fmt.Errorf("%w; the rollback failed too: %w", cause, errors.Join(errs...))
			}
			return fmt.Errorf("%w; rolled back: the touched tables were restored from %s", cause, b.path)
		}
		if _, err := a.run(ctx, "nft", []string{"-f", "-"}, []byte(script)); err != nil {
			return nil, fmt.Errorf("applying the nftables transaction (nothing changed: nft applies it whole or not at all): %w", err)
		}
		applied = true
		for _, pl := range payloads {
			fmt.Fprintf(a.out, "applied %s %s: %d command(s) in one nft transaction\n", pl.Family, pl.Table, strings.Count(pl.Text, "\n"))
		}
		if err := a.finishNft(ctx, p, res); err != nil {
			return nil, rollback(err)
		}
		return res, nil
	}
	if err := a.finishNft(ctx, p, res); err != nil {
		for _, s := range res.Sysctls {
			_ = a.writeSysctl(s.Name, s.Old)
		}
		return nil, fmt.Errorf("%w; rolled back: sysctls set back", err)
	}
	return res, nil
}

// finishNft sets the sysctls and verifies by re-reading.
func (a *applier) finishNft(ctx context.Context, p *diagnose.Plan, res *Result) error {
	for _, s := range res.Sysctls {
		if err := a.writeSysctl(s.Name, s.Value); err != nil {
			return fmt.Errorf("setting %s=%s: %w", s.Name, s.Value, err)
		}
		fmt.Fprintf(a.out, "set %s = %s (was %s)\n", s.Name, s.Value, s.Old)
	}
	if a.o.Recheck == nil {
		return nil
	}
	after, err := a.o.Recheck(ctx)
	if err != nil {
		return fmt.Errorf("re-reading the host after the repair: %w", err)
	}
	if bad := verify(p, after); len(bad) > 0 {
		return fmt.Errorf("the re-read disagrees with the plan:\n  %s", strings.Join(bad, "\n  "))
	}
	res.After = after
	return nil
}

// backupNft saves Docker's table of every touched family with `nft list
// table` (an absent table is an empty section) into a backup file that
// `iptscope restore` reads.
func (a *applier) backupNft(ctx context.Context, payloads []Payload) (*backupFile, error) {
	now := time.Now
	if a.o.Now != nil {
		now = a.o.Now
	}
	ns := a.o.NetNS
	if ns == "" {
		ns = "host"
	}
	dir := a.o.BackupDir
	if dir == "" {
		dir = DefaultBackupDir
	}
	b := &backupFile{backend: NftBackend, netns: a.o.NetNS, sections: map[string]string{}}
	b.path = filepath.Join(dir, now().UTC().Format("20060102T150405.000000000Z")+"-"+strings.Trim(unsafeName.ReplaceAllString(ns, "_"), "_")+".rules")
	var text strings.Builder
	fmt.Fprintf(&text, "# iptscope backup\n# netns: %s\n# backend: %s\n", a.o.NetNS, NftBackend)
	for _, pl := range payloads {
		fam := nftFamilyOf(pl.Family)
		out, err := a.run(ctx, "nft", []string{"list", "table", string(fam), diagnose.NftDockerTable}, nil)
		if err != nil {
			// nft: "Error: No such file or directory" for an absent table.
			if !strings.Contains(strings.ToLower(err.Error()), "no such file or directory") {
				return nil, fmt.Errorf("backing up table %s %s: %w", fam, diagnose.NftDockerTable, err)
			}
			out = nil // absent: restored by deleting what the repair created
		}
		key := pl.Family + " " + diagnose.NftDockerTable
		b.sections[key] = string(out)
		b.order = append(b.order, key)
		fmt.Fprintf(&text, "%s%s\n%s", sectionMarker, key, out)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating the backup folder: %w", err)
	}
	if err := os.WriteFile(b.path, []byte(text.String()), 0o600); err != nil {
		return nil, fmt.Errorf("writing the backup: %w", err)
	}
	return b, nil
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
