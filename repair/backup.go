package repair

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/iptscope/iptscope/diagnose"
	"github.com/iptscope/iptscope/parse"
	"github.com/iptscope/iptscope/snapshot"
)

// A backup file is iptables-save text of the touched tables, one section
// per family and table, each introduced by a marker comment that
// iptables-restore ignores, after a header that records what the backup
// restores and why it was taken:
//
//	# iptscope backup
//	# time: 2026-12-01T12:00:00.123456789Z
//	# netns: dr2010nf
//	# backend: nft
//	# families: ipv4
//	# tables: ipv4 nat
//	# plan: ipv4 nat -A DOCKER -d 127.0.0.1/32 ... (one line per operation)
//	# section: ipv4 nat
//	*nat
//	...
//	COMMIT
//
// Backups written before the header grew (netns and backend only) are
// still read.
const sectionMarker = "# section: "

// DefaultKeepBackups is how many backups of one network namespace a
// repair keeps in the backup folder (the newest; see Prune).
const DefaultKeepBackups = 20

type backupFile struct {
	path     string
	backend  string
	netns    string
	time     string
	families []string
	tables   []string
	plan     []string
	sections map[string]string // tableKey -> iptables-save text
	order    []string
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9_.-]+`)

// nsTag is the namespace as it appears in a backup's file name.
func nsTag(netns string) string {
	if netns == "" {
		return "host"
	}
	return strings.Trim(unsafeName.ReplaceAllString(netns, "_"), "_")
}

// backupName matches the files Apply writes: TIME-NSTAG[.rN].rules.
var backupName = regexp.MustCompile(`^(\d{8}T\d{6}\.\d{9}Z)-(.+?)(\.r\d+)?\.rules$`)

// backup saves every table a payload touches and writes the file.
func (a *applier) backup(ctx context.Context, payloads []Payload) (*backupFile, error) {
	now := time.Now
	if a.o.Now != nil {
		now = a.o.Now
	}
	dir := a.o.BackupDir
	if dir == "" {
		dir = DefaultBackupDir
	}
	t := now().UTC()
	b := &backupFile{backend: a.plan.Backend, netns: a.o.NetNS, time: t.Format(time.RFC3339Nano), sections: map[string]string{}}
	name := t.Format("20060102T150405.000000000Z") + "-" + nsTag(a.o.NetNS)
	if a.round > 0 {
		name += fmt.Sprintf(".r%d", a.round+1)
	}
	b.path = filepath.Join(dir, name+".rules")
	fams := map[string]bool{}
	for _, pl := range payloads {
		if !fams[pl.Family] {
			fams[pl.Family] = true
			b.families = append(b.families, pl.Family)
		}
		b.tables = append(b.tables, tableKey(pl.Family, pl.Table))
	}
	for _, op := range a.plan.Ops {
		if op.Kind == diagnose.OpSysctl {
			b.plan = append(b.plan, fmt.Sprintf("sysctl %s=%s (was %s)", op.Name, op.Value, op.Old))
		} else {
			b.plan = append(b.plan, op.Family+" "+string(op.Table)+" "+op.Line())
		}
	}
	var text strings.Builder
	fmt.Fprintf(&text, "# iptscope backup\n# time: %s\n# netns: %s\n# backend: %s\n# families: %s\n# tables: %s\n",
		b.time, oneLine(a.o.NetNS), a.plan.Backend, strings.Join(b.families, ","), strings.Join(b.tables, ", "))
	for _, l := range b.plan {
		text.WriteString("# plan: " + oneLine(l) + "\n")
	}
	for _, pl := range payloads {
		bin, err := a.tool(pl.Family, "save")
		if err != nil {
			return nil, err
		}
		out, err := a.run(ctx, bin, []string{"-t", string(pl.Table)}, nil)
		if err != nil {
			return nil, fmt.Errorf("backing up the %s %s table: %w", pl.Family, pl.Table, err)
		}
		k := tableKey(pl.Family, pl.Table)
		b.sections[k] = string(out)
		b.order = append(b.order, k)
		text.WriteString(sectionMarker + k + "\n")
		text.Write(out)
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

// oneLine keeps a header value on its line.
func oneLine(s string) string { return strings.NewReplacer("\n", " ", "\r", " ").Replace(s) }

// writeFileAtomic writes data to a temporary file next to path, syncs it
// and renames it into place, so that a full disk or a crash never leaves
// a truncated backup under the real name (the temporary file is removed).
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".iptscope-backup-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err := f.Chmod(perm); err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	ok = true
	return nil
}

// Prune deletes the oldest backups of one network namespace in dir so that
// keep remain (DefaultKeepBackups when 0; negative keeps all). Only files
// named as Apply names them and starting with "# iptscope backup" are
// considered; it returns the paths deleted.
func Prune(dir, netns string, keep int) ([]string, error) {
	if keep == 0 {
		keep = DefaultKeepBackups
	}
	if keep < 0 {
		return nil, nil
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	tag := nsTag(netns)
	var mine []string
	for _, e := range ents {
		m := backupName.FindStringSubmatch(e.Name())
		if m == nil || m[2] != tag || !e.Type().IsRegular() {
			continue
		}
		mine = append(mine, e.Name())
	}
	sort.Strings(mine) // the time stamp first: oldest first
	var deleted []string
	var errs []error
	for _, n := range mine[:max(0, len(mine)-keep)] {
		p := filepath.Join(dir, n)
		if !isBackup(p) {
			continue
		}
		if err := os.Remove(p); err != nil {
			errs = append(errs, err)
			continue
		}
		deleted = append(deleted, p)
	}
	return deleted, errors.Join(errs...)
}

// isBackup reports whether the file starts with the backup's first line.
func isBackup(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	buf := make([]byte, len("# iptscope backup\n"))
	n, _ := io.ReadFull(f, buf)
	return string(buf[:n]) == "# iptscope backup\n"
}

// restoreSections puts back the backed-up text of the given payloads'
// tables, each with a plain `iptables-restore -w` (no --noflush: the
// table is replaced by the backup; other tables are not in the input and
// stay as they are).
func (a *applier) restoreSections(ctx context.Context, sections map[string]string, which []Payload) error {
	for _, pl := range which {
		text, ok := sections[tableKey(pl.Family, pl.Table)]
		if !ok {
			return fmt.Errorf("the backup has no %s %s table", pl.Family, pl.Table)
		}
		bin, err := a.tool(pl.Family, "restore")
		if err != nil {
			return err
		}
		if _, err := a.run(ctx, bin, []string{"-w", lockWait}, []byte(text)); err != nil {
			return fmt.Errorf("restoring %s %s: %w", pl.Family, pl.Table, payloadError(bin, text, err))
		}
	}
	return nil
}

// ReadBackup parses a backup file written by Apply.
func ReadBackup(path string) (*backupFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading the backup: %w", err)
	}
	defer f.Close()
	b := &backupFile{path: path, sections: map[string]string{}}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<26)
	cur := ""
	var buf strings.Builder
	flush := func() {
		if cur != "" {
			b.sections[cur] = buf.String()
			b.order = append(b.order, cur)
		}
		buf.Reset()
	}
	first := true
	for sc.Scan() {
		line := sc.Text()
		if first && line != "# iptscope backup" {
			return nil, fmt.Errorf("%s is not an iptscope backup (its first line is not \"# iptscope backup\")", path)
		}
		first = false
		switch {
		case strings.HasPrefix(line, "# netns: ") && cur == "":
			b.netns = strings.TrimPrefix(line, "# netns: ")
		case strings.HasPrefix(line, "# backend: ") && cur == "":
			b.backend = strings.TrimPrefix(line, "# backend: ")
		case strings.HasPrefix(line, "# time: ") && cur == "":
			b.time = strings.TrimPrefix(line, "# time: ")
		case strings.HasPrefix(line, "# families: ") && cur == "":
			b.families = splitList(strings.TrimPrefix(line, "# families: "), ",")
		case strings.HasPrefix(line, "# tables: ") && cur == "":
			b.tables = splitList(strings.TrimPrefix(line, "# tables: "), ", ")
		case strings.HasPrefix(line, "# plan: ") && cur == "":
			b.plan = append(b.plan, strings.TrimPrefix(line, "# plan: "))
		case strings.HasPrefix(line, sectionMarker):
			flush()
			cur = strings.TrimPrefix(line, sectionMarker)
			fam, t, ok := strings.Cut(cur, " ")
			if !ok || (fam != "ipv4" && fam != "ipv6") || !parse.TableName(t).IsKnown() && t != diagnose.NftDockerTable {
				return nil, fmt.Errorf("%s: bad section line %q", path, line)
			}
		default:
			if cur != "" {
				buf.WriteString(line + "\n")
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading the backup: %w", err)
	}
	flush()
	if len(b.order) == 0 {
		return nil, fmt.Errorf("%s holds no table", path)
	}
	if err := b.check(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return b, nil
}

// NetNS is the network namespace the backup was taken in ("" for the
// initial one).
func (b *backupFile) NetNS() string { return b.netns }

func splitList(s, sep string) []string {
	var out []string
	for _, f := range strings.Split(s, sep) {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// ErrBackupMismatch marks a backup that does not fit the host or
// contradicts itself: restore refuses it.
var ErrBackupMismatch = errors.New("backup does not match")

// check refuses a backup whose sections are not the tables its header
// lists, whose backend is unknown, or whose rules name addresses of the
// other family (an ip6tables table saved as ipv4, say): restoring it
// would replace a table with something it never held.
func (b *backupFile) check() error {
	switch b.backend {
	case "", "nft", "legacy":
	case NftBackend:
		return b.checkNft()
	default:
		return fmt.Errorf("%w: unknown backend %q", ErrBackupMismatch, b.backend)
	}
	if len(b.tables) > 0 && strings.Join(b.tables, ",") != strings.Join(b.order, ",") {
		return fmt.Errorf("%w: its header lists %s, its sections are %s", ErrBackupMismatch, strings.Join(b.tables, ", "), strings.Join(b.order, ", "))
	}
	for _, k := range b.order {
		fam, t, _ := strings.Cut(k, " ")
		text := b.sections[k]
		if strings.TrimSpace(text) == "" {
			continue
		}
		rs, err := parse.ParseSave([]byte(text))
		if err != nil {
			return fmt.Errorf("section %s: %w", k, err)
		}
		if len(rs.Tables) != 1 || string(rs.Tables[0].Name) != t {
			return fmt.Errorf("%w: section %s does not hold exactly the %s table", ErrBackupMismatch, k, t)
		}
		for _, c := range rs.Tables[0].Chains {
			for _, r := range c.Rules {
				for _, v := range []string{r.Source.Value, r.Destination.Value} {
					if v == "" {
						continue
					}
					if got := addrFamily(v); got != "" && got != fam {
						return fmt.Errorf("%w: section %s holds an %s address (%s, line %d): it is not an %s table", ErrBackupMismatch, k, got, v, r.Line, fam)
					}
				}
			}
		}
	}
	return nil
}

// checkNft refuses a backup of Docker's nftables tables whose sections
// are not "ipv4 docker-bridges" / "ipv6 docker-bridges" holding exactly
// that table of that family ("table ip docker-bridges {" or ip6).
func (b *backupFile) checkNft() error {
	for _, k := range b.order {
		fam, t, _ := strings.Cut(k, " ")
		want := map[string]string{snapshot.FamilyIPv4: "ip", snapshot.FamilyIPv6: "ip6"}[fam]
		if want == "" || t != diagnose.NftDockerTable {
			return fmt.Errorf("%w: section %s is not one of Docker's nftables tables", ErrBackupMismatch, k)
		}
		text := strings.TrimSpace(b.sections[k])
		if text == "" {
			continue // the table did not exist: restoring deletes it
		}
		if !strings.HasPrefix(text, "table "+want+" "+t+" {") ||
			strings.Contains(text, "\ntable ") {
			return fmt.Errorf("%w: section %s does not hold exactly the %s %s table", ErrBackupMismatch, k, want, t)
		}
	}
	return nil
}

// addrFamily is the family of an address or prefix, "" when it is neither.
func addrFamily(v string) string {
	a, err := netip.ParseAddr(v)
	if err != nil {
		p, err := netip.ParsePrefix(v)
		if err != nil {
			return ""
		}
		a = p.Addr()
	}
	if a.Is4() {
		return "ipv4"
	}
	return "ipv6"
}

// Restore puts a backup back: each table it holds is replaced by its
// backed-up content (iptables-restore without --noflush, per table),
// with the backend's restore tool, in the namespace o.NetNS (which, when
// empty, defaults to the one recorded in the backup).
func Restore(ctx context.Context, path string, o Options) ([]string, error) {
	b, err := ReadBackup(path)
	if err != nil {
		return nil, err
	}
	if !o.SkipRootCheck && os.Geteuid() != 0 {
		return nil, fmt.Errorf("restoring needs root (run with sudo)")
	}
	if o.NetNS == "" {
		o.NetNS = b.netns
	}
	// Why refuse: the same table text restored with the other backend's
	// tool lands in tables Docker does not read (a backend split).
	if o.Backend != "" && b.backend != "" && !b.isNft() && o.Backend != b.backend {
		return nil, fmt.Errorf("%w: %s was taken from the %s backend, and the host's rules are in the %s backend now; nothing was changed", ErrBackupMismatch, path, b.backend, o.Backend)
	}
	a := newApplier(&diagnose.Plan{Backend: b.backend}, o)
	if b.isNft() {
		return b.order, a.restoreNft(ctx, b.sections, b.order) // nft.go
	}
	var which []Payload
	for _, k := range b.order {
		fam, t, _ := strings.Cut(k, " ")
		which = append(which, Payload{Family: fam, Table: parse.TableName(t)})
	}
	if err := a.restoreSections(ctx, b.sections, which); err != nil {
		return nil, err
	}
	return b.order, nil
}
