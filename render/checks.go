package render

import (
	"encoding/json"
	"io"

	"github.com/iptscope/iptscope/diagnose"
)

// ChecksSchema is the "schema" value of `iptscope checks -o json`.
const ChecksSchema = "iptscope.checks/v1"

// CheckInfo describes one check for `iptscope checks`. The JSON field names
// are part of iptscope.checks/v1 and stable.
type CheckInfo struct {
	ID       string            `json:"id"`
	Severity diagnose.Severity `json:"severity"`
	Title    string            `json:"title"`
	// Repairable is true when `doctor --fix` repairs the check's findings;
	// NotRepairedReason says why not otherwise.
	Repairable        bool   `json:"repairable"`
	NotRepairedReason string `json:"not_repaired_reason,omitempty"`
	// Doc is the check's page in the repository: docs/checks/<id>.md
	// (`iptscope explain ID` prints it).
	Doc string `json:"doc"`
}

// ChecksDoc is the document `iptscope checks -o json` prints.
type ChecksDoc struct {
	Schema string      `json:"schema"`
	Checks []CheckInfo `json:"checks"`
}

// ChecksJSON writes the checks as one indented JSON document.
func ChecksJSON(w io.Writer, checks []CheckInfo) error {
	if checks == nil {
		checks = []CheckInfo{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(ChecksDoc{Schema: ChecksSchema, Checks: checks})
}

// ChecksTable writes one row per check: ID, severity (coloured on a
// terminal), R when `doctor --fix` repairs it, and the title.
func ChecksTable(w io.Writer, checks []CheckInfo, o Options) error {
	if !o.Terminal {
		tw := &trimWriter{w: w}
		defer tw.Flush()
		w = tw
	}
	p := newPalette(o)
	tbl := newTable(w, o)
	tbl.Header("ID", "SEVERITY", "FIX", "TITLE")
	for _, c := range checks {
		fix := "-"
		if c.Repairable {
			fix = "yes"
		}
		if err := tbl.Append([]string{c.ID, severity(c.Severity, p), fix, oneLine(c.Title)}); err != nil {
			return err
		}
	}
	return tbl.Render()
}
