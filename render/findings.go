package render

import (
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
	return writeIndented(w, r)
}

// DoctorText writes the report for people, root cause first: a summary
// line, the findings table, each finding's detail, what it affects,
// evidence and fix, then the published ports table, the notes and one
// line that says what to do next. Severities are coloured on a terminal;
// plain output is stable (no trailing spaces) for scripts and golden
// tests. At scale the ports table shows the ports that are not on the NAT
// path first and at most MaxPortRows rows (the JSON has them all).
func DoctorText(w io.Writer, r *diagnose.Report, o Options) error {
	r = sanitized(r) // names and rules from the host or a bundle (sanitize.go)
	if !o.Terminal {
		tw := &trimWriter{w: w}
		defer tw.Flush()
		w = tw
	}
	fw := Fit(w, o.Width)
	defer fw.Close()
	w = fw
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

	for _, f := range r.Findings {
		ew.println()
		ew.println(fmt.Sprintf("%s %s: %s", severity(f.Severity, p), p.bold(f.ID), f.Title))
		ew.println("  " + f.Detail)
		if len(f.CausedBy) > 0 {
			ew.println("  " + p.dim("follows from:") + " " + strings.Join(f.CausedBy, ", "))
		}
		if len(f.Affected) > 1 {
			ew.println("  " + p.dim(fmt.Sprintf("affects %d:", len(f.Affected))) + " " + affectedText(f.Affected, 8))
		}
		if len(f.Evidence) > 0 {
			ew.println("  " + p.dim("evidence:"))
			for _, e := range f.Evidence {
				ew.println("    " + e)
			}
		}
		ew.println("  " + p.dim("fix:") + " " + f.Fix)
	}

	ew.println()
	if len(r.Ports) == 0 {
		ew.println(p.dim("(no published ports)"))
	} else {
		rows, hidden := portRows(r.Ports, MaxPortRows)
		tbl := newTable(ew, o)
		tbl.Header("HOST", "CONTAINER", "NETWORK", "PATH", "REASON")
		for _, pr := range rows {
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
		if hidden > 0 {
			ew.println(p.dim(fmt.Sprintf("... and %d more published ports, all on the NAT path (every row: -o json; one port: --port N)", hidden)))
		}
	}
	if len(r.NotChecked) > 0 {
		ew.println()
		ew.println(p.dim("not checked without the host: " + notCheckedText(r.NotChecked)))
	}
	if len(r.Notes) > 0 {
		ew.println()
		for _, n := range r.Notes {
			ew.println(p.dim("note: " + n))
		}
	}
	if r.Next != "" {
		ew.println()
		ew.println(p.bold(r.Next))
	}
	return ew.err
}

// MaxPortRows is how many rows of the ports table DoctorText prints.
const MaxPortRows = 40

// portRows returns the rows to print, those not on the NAT path first,
// at most n (all of them when n is not exceeded), and how many are left
// out; every left-out row is on the NAT path or local-only.
func portRows(ps []diagnose.PortReport, n int) ([]diagnose.PortReport, int) {
	if len(ps) <= n {
		return ps, 0
	}
	var bad, good []diagnose.PortReport
	for _, p := range ps {
		if p.Path == diagnose.PathNAT || p.Path == diagnose.PathLocalOnly {
			good = append(good, p)
		} else {
			bad = append(bad, p)
		}
	}
	if len(bad) >= n {
		// Why: every problem row is shown, however many: these are the
		// ports the user must see.
		return bad, len(good)
	}
	rows := append(bad, good[:n-len(bad)]...)
	return rows, len(ps) - len(rows)
}

// affectedText renders the first n affected subjects: "8080/tcp (web),
// 7000/tcp (multi) ... and 994 more".
func affectedText(ss []diagnose.Subject, n int) string {
	var parts []string
	for i, s := range ss {
		if i == n {
			parts = append(parts, fmt.Sprintf("... and %d more", len(ss)-n))
			break
		}
		parts = append(parts, affectedOne(s))
	}
	return strings.Join(parts, ", ")
}

func affectedOne(s diagnose.Subject) string {
	var what string
	switch {
	case s.Port != "":
		what = s.Port
	case s.ContainerPort != "":
		what = s.ContainerPort
	case s.Chain != "":
		what = strings.TrimSpace(string(s.Table) + " " + string(s.Chain))
	case s.Network != "":
		what = "network " + s.Network
	default:
		what = subjectText(s)
	}
	switch {
	case s.Container != "":
		what += " (" + s.Container + ")"
	case s.Network != "" && !strings.HasPrefix(what, "network "):
		what += " (" + s.Network + ")"
	}
	return what
}

// notCheckedText groups the checks that did not run by what they need.
func notCheckedText(nc []diagnose.NotChecked) string {
	var order []string
	by := map[string][]string{}
	for _, c := range nc {
		if by[c.Needs] == nil {
			order = append(order, c.Needs)
		}
		by[c.Needs] = append(by[c.Needs], c.ID)
	}
	var parts []string
	for _, need := range order {
		parts = append(parts, need+" ("+strings.Join(by[need], ", ")+")")
	}
	return strings.Join(parts, "; ")
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
	switch {
	case r.Host.DockerVersion != "":
	case r.Host.Layout != "":
		docker = "docker layout " + r.Host.Layout + " (inferred from the rules)"
	case len(r.NotChecked) > 0:
		docker = "docker (view inferred from the rules; no filter table, layout unknown)"
	}
	if v := r.Host.DockerVersion; v != "" {
		if pv, err := diagnose.ParseVersion(v); err == nil {
			v = pv.String()
		}
		docker = "docker " + v
	}
	var attrs []string
	switch b := r.Host.DockerBackend; {
	case r.Host.Layout == "29-nftables":
		// Docker's rules are in its nftables table, not in iptables.
		attrs = append(attrs, "nftables backend")
	case b == "":
	case b == "none":
		// Why: after a flush no backend holds Docker's chains; name the
		// one `iptables` uses, where Docker would write.
		if r.Host.IptablesBackend != "" {
			attrs = append(attrs, r.Host.IptablesBackend)
		}
		attrs = append(attrs, "no Docker chains")
	case b == "both":
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
		parts = append(parts, strings.TrimSpace(string(s.Table)+" "+string(s.Chain)))
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
	if s.ContainerPort != "" {
		parts = append(parts, "container port "+s.ContainerPort)
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
