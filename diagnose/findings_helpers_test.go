package diagnose

// findingPorts lists the ports a finding is about: every affected subject's
// port for a grouped finding, else its subject's.
func findingPorts(f Finding) []string {
	if len(f.Affected) == 0 {
		return []string{f.Subject.Port}
	}
	var out []string
	for _, s := range f.Affected {
		out = append(out, s.Port)
	}
	return out
}
