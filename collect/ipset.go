package collect

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"strings"

	"github.com/iptscope/iptscope/snapshot"
)

// ReadIPSets runs `ipset save` inside the network namespace netns (as
// Options.NetNS names it; "" for the collector's own) and returns every
// set with its members. It returns an error wrapping exec.ErrNotFound
// when ipset is not installed (then no rule can use a set either, except
// in a namespace whose sets another tool made) and the command's error
// otherwise; the caller keeps Snapshot.IPSets nil then, so that a -m set
// match stays undecided rather than empty.
func ReadIPSets(ctx context.Context, r Runner, netns string) ([]snapshot.IPSet, error) {
	if r == nil {
		r = ExecRunner{}
	}
	var out []byte
	err := InNetNS(netns, func() error {
		var err error
		out, err = r.Run(ctx, "ipset", []string{"save"}, nil)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("reading ipsets: %w", err)
	}
	return ParseIPSetSave(out)
}

// ParseIPSetSave reads `ipset save` output: "create NAME TYPE [family
// inet|inet6] ..." then "add NAME MEMBER [options]" lines. It returns a
// non-nil slice (empty when there is no set) and an error naming the line
// for an "add" to a set that was not created.
func ParseIPSetSave(data []byte) ([]snapshot.IPSet, error) {
	sets := []snapshot.IPSet{}
	index := map[string]int{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64*1024), 16*1024*1024)
	line := 0
	for sc.Scan() {
		line++
		f := strings.Fields(sc.Text())
		if len(f) < 3 {
			continue
		}
		switch f[0] {
		case "create":
			s := snapshot.IPSet{Name: f[1], Type: f[2], Members: []string{}}
			for i := 3; i+1 < len(f); i++ {
				if f[i] == "family" {
					s.Family = f[i+1]
				}
			}
			index[s.Name] = len(sets)
			sets = append(sets, s)
		case "add":
			i, ok := index[f[1]]
			if !ok {
				return nil, fmt.Errorf("ipset save line %d: %q adds to set %s, which was not created", line, sc.Text(), f[1])
			}
			// Keep the member and the options that change matching
			// ("nomatch"); counters, timeouts and comments do not.
			m := f[2]
			for _, o := range f[3:] {
				if o == "nomatch" {
					m += " nomatch"
				}
			}
			sets[i].Members = append(sets[i].Members, m)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading ipset save output: %w", err)
	}
	return sets, nil
}
