package repair

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/iptscope/iptscope/diagnose"
	"github.com/iptscope/iptscope/parse"
)

// A backup file is iptables-save text of the touched tables, one section
// per family and table, each introduced by a marker comment that
// iptables-restore ignores:
//
//	# iptscope backup
//	# netns: dr2010nf
//	# backend: nft
//	# section: ipv4 nat
//	*nat
//	...
//	COMMIT
const sectionMarker = "# section: "

type backupFile struct {
	path     string
	backend  string
	netns    string
	sections map[string]string // tableKey -> iptables-save text
	order    []string
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9_.-]+`)

// backup saves every table a payload touches and writes the file.
func (a *applier) backup(ctx context.Context, payloads []Payload) (*backupFile, error) {
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
	b := &backupFile{backend: a.plan.Backend, netns: a.o.NetNS, sections: map[string]string{}}
	b.path = filepath.Join(dir, now().UTC().Format("20060102T150405.000000000Z")+"-"+strings.Trim(unsafeName.ReplaceAllString(ns, "_"), "_")+".rules")
	var text strings.Builder
	fmt.Fprintf(&text, "# iptscope backup\n# netns: %s\n# backend: %s\n", a.o.NetNS, a.plan.Backend)
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
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating the backup folder: %w", err)
	}
	if err := os.WriteFile(b.path, []byte(text.String()), 0o600); err != nil {
		return nil, fmt.Errorf("writing the backup: %w", err)
	}
	return b, nil
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
	return b, nil
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
