package render

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"

	"github.com/iptscope/iptscope/diagnose"
)

// DoctorJSON writes the report as one indented JSON document
// (iptscope.doctor/v1, see docs/doctor.md).
func DoctorJSON(w io.Writer, r *diagnose.Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// DoctorText writes the report for people: a summary line, the findings
// table, the published ports table, then each finding's detail, evidence
// and fix, and the notes. Severities are coloured on a terminal; plain
// output is stable (no trailing spaces) for scripts and golden tests.
func DoctorText(w io.Writer, r *diagnose.Report, o Options) error {
	if !o.Terminal {
		tw := &trimWriter{w: w}
		defer tw.Flush()
		w = tw
	}
	p := newPalette(o)
	ew := &errWriter{w: w}
	ew.println(summary(r, p))

	if len(r.Findings) > 0 {
		ew.println()
		tbl := newTable(ew, o)
		tbl.Header("ID", "SEVERITY", "TITLE", "SUBJECT")
		for _, f := range r.Findings {
			if err := tbl.Append([]string{f.ID, severity(f.Severity, p), oneLine(f.Title), orDash(subjectText(f.Subject))}); err != nil {
				return err
			}
		}
		if err := tbl.Render(); err != nil {
			return err
		}
	}

	ew.println()
	if len(r.Ports) == 0 {
		ew.println(p.dim("(no published ports)"))
	} else {
		tbl := newTable(ew, o)
		tbl.Header("HOST", "CONTAINER", "NETWORK", "PATH", "REASON")
		for _, pr := range r.Ports {
			host := pr.HostAddr()
			if pr.AlsoIPv6 {
				host += " +[::]"
			}
			ct := pr.Container
			if pr.ContainerIP != "" {
				ct += " " + net.JoinHostPort(pr.ContainerIP, strconv.Itoa(pr.ContainerPort))
			} else {
				ct += fmt.Sprintf(" :%d", pr.ContainerPort)
			}
			if err := tbl.Append([]string{host, ct, orDash(pr.Network), pathText(pr.Path, p), oneLine(pr.Reason)}); err != nil {
				return err
			}
		}
		if err := tbl.Render(); err != nil {
			return err
		}
	}

	for _, f := range r.Findings {
		ew.println()
		ew.println(fmt.Sprintf("%s %s: %s", severity(f.Severity, p), p.bold(f.ID), f.Title))
		ew.println("  " + f.Detail)
		if len(f.Evidence) > 0 {
			ew.println("  " + p.dim("evidence:"))
			for _, e := range f.Evidence {
				ew.println("    " + e)
			}
		}
		ew.println("  " + p.dim("fix:") + " " + f.Fix)
	}
	if len(r.Notes) > 0 {
		ew.println()
		for _, n := range r.Notes {
			ew.println(p.dim("note: " + n))
		}
	}
	return ew.err
}

// summary is the report's first line: "problems: docker 28.5.2 (nft), 6
// published ports: 1 error, 1 info".
func summary(r *diagnose.Report, p palette) string {
	var status string
	switch r.Status {
	case diagnose.StatusOK:
		status = p.green(string(r.Status))
	case diagnose.StatusProblems:
		status = p.red(string(r.Status))
	default:
		status = p.yellow(string(r.Status))
	}
	docker := "docker unknown"
	if v := r.Host.DockerVersion; v != "" {
		if pv, err := diagnose.ParseVersion(v); err == nil {
			v = pv.String()
		}
		docker = "docker " + v
	}
	var attrs []string
	switch b := r.Host.DockerBackend; b {
	case "":
	case "none":
		// Why: after a flush no backend holds Docker's chains; name the
		// one `iptables` uses, where Docker would write.
		if r.Host.IptablesBackend != "" {
			attrs = append(attrs, r.Host.IptablesBackend)
		}
		attrs = append(attrs, "no Docker chains")
	case "both":
		attrs = append(attrs, "Docker chains in nft and legacy")
	default:
		attrs = append(attrs, b)
	}
	if r.Host.UserlandProxy != "" {
		attrs = append(attrs, "userland-proxy "+r.Host.UserlandProxy)
	}
	if len(attrs) > 0 {
		docker += " (" + strings.Join(attrs, ", ") + ")"
	}
	counts := plural(len(r.Ports), "published port")
	var sev []string
	for _, s := range []diagnose.Severity{diagnose.SeverityError, diagnose.SeverityWarning, diagnose.SeverityInfo} {
		if n := r.Count(s); n > 0 {
			sev = append(sev, plural(n, string(s)))
		}
	}
	if len(sev) == 0 {
		sev = []string{"no findings"}
	}
	line := fmt.Sprintf("%s: %s, %s: %s", status, docker, counts, strings.Join(sev, ", "))
	if r.Partial {
		line += " (partial)"
	}
	return line
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}

// severity colours a severity: error red, warning yellow, info cyan.
func severity(s diagnose.Severity, p palette) string {
	switch s {
	case diagnose.SeverityError:
		return p.red(string(s))
	case diagnose.SeverityWarning:
		return p.yellow(string(s))
	case diagnose.SeverityInfo:
		return p.cyan(string(s))
	}
	return string(s)
}

// pathText colours a port path: nat green, proxy-only yellow, broken red.
func pathText(path diagnose.PortPath, p palette) string {
	switch path {
	case diagnose.PathNAT:
		return p.green(string(path))
	case diagnose.PathProxyOnly:
		return p.yellow(string(path))
	case diagnose.PathBroken:
		return p.red(string(path))
	}
	return p.dim(string(path))
}

// subjectText renders a subject compactly: "nat DOCKER, container web,
// port 8080/tcp".
func subjectText(s diagnose.Subject) string {
	var parts []string
	if s.Table != "" || s.Chain != "" {
		parts = append(parts, strings.TrimSpace(s.Table+" "+s.Chain))
	}
	if s.Network != "" {
		parts = append(parts, "network "+s.Network)
	}
	if s.Container != "" {
		parts = append(parts, "container "+s.Container)
	}
	if s.Port != "" {
		parts = append(parts, "port "+s.Port)
	}
	return strings.Join(parts, ", ")
}

// errWriter remembers the first write error.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(b []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(b)
	e.err = err
	return n, err
}

func (e *errWriter) println(a ...any) {
	if e.err == nil {
		_, e.err = fmt.Fprintln(e.w, a...)
	}
}
