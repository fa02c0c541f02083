package render

import (
	"fmt"
	"io"
	"strings"

	"github.com/iptscope/iptscope/diagnose"
)

// FixSchema is the "schema" value of `iptscope doctor --fix -o json`.
const FixSchema = "iptscope.fix/v1"

// PlanPayload is one iptables-restore payload of a plan, as repair renders
// it (render stays pure: it does not import repair).
type PlanPayload struct {
	Family string
	Table  string
	Text   string
}

// Fix is the JSON answer of `doctor --fix` (iptscope.fix/v1,
// docs/schema/fix.v1.json): the plan, its payloads by "family/table",
// whether it was applied and where the backup is.
type Fix struct {
	Schema      string            `json:"schema"`
	ToolVersion string            `json:"tool_version,omitempty"`
	Plan        *diagnose.Plan    `json:"plan"`
	Payloads    map[string]string `json:"payloads"`
	Applied     bool              `json:"applied"`
	Backup      string            `json:"backup,omitempty"`
}

// NewFix is the Fix of a plan not applied yet.
func NewFix(plan *diagnose.Plan, payloads []PlanPayload, version string) *Fix {
	f := &Fix{Schema: FixSchema, ToolVersion: version, Plan: plan, Payloads: map[string]string{}}
	for _, p := range payloads {
		f.Payloads[p.Family+"/"+p.Table] = p.Text
	}
	return f
}

// FixJSON writes f as one indented JSON document.
func FixJSON(w io.Writer, f *Fix) error {
	return writeIndented(w, f)
}

// PlanText writes the plan for people: what is repaired, what is left
// alone and why, each payload exactly as it goes to iptables-restore (not
// indented, so that it can be pasted into `iptables-restore --noflush` as
// is: iptables-restore refuses an indented line), and the sysctl changes.
func PlanText(w io.Writer, plan *diagnose.Plan, payloads []PlanPayload) error {
	plan, payloads = sanitized(plan), sanitized(payloads) // sanitize.go
	ew := &errWriter{w: w}
	ew.println("Repair plan")
	for _, pf := range plan.Findings {
		f := pf.Finding
		switch {
		case pf.Repaired:
			ew.println(fmt.Sprintf("  repair  %-22s %s", f.ID, f.Title))
		default:
			ew.println(fmt.Sprintf("  leave   %-22s %s\n          why: %s", f.ID, f.Title, pf.Reason))
		}
	}
	for _, n := range plan.Notes {
		ew.println("  note: " + n)
	}
	backend := plan.Backend
	if backend == "" {
		backend = "default"
	}
	for _, p := range payloads {
		if p.Table == diagnose.NftDockerTable {
			ew.println(fmt.Sprintf("\n%s %s, one nft -f transaction:", p.Family, p.Table))
		} else {
			ew.println(fmt.Sprintf("\n%s %s (backend %s), iptables-restore --noflush payload:", p.Family, p.Table, backend))
		}
		ew.println(strings.TrimRight(p.Text, "\n"))
	}
	if ops := plan.SysctlOps(); len(ops) > 0 {
		ew.println("\nsysctl changes:")
		for _, s := range ops {
			ew.println(fmt.Sprintf("  %s = %s (now %s)", s.Name, s.Value, s.Old))
		}
	}
	ew.println()
	return ew.err
}
