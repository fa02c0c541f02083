package diagnose

// dockerUnreachable: the Docker API could not be read, so nothing can be
// reconciled with Docker's networks and ports.
var dockerUnreachable = Check{
	ID:       "docker-unreachable",
	Title:    "The Docker API could not be read; the diagnosis is partial",
	Severity: SeverityWarning,
	Repair:   Repair{Manual: "without Docker's view no rule can be proven right or stale: nothing is repaired"},
	Run: func(env *Env) []Finding {
		s := env.S
		if s.Docker != nil && s.Docker.Error == "" {
			return nil
		}
		f := Finding{
			ID:       "docker-unreachable",
			Severity: SeverityWarning,
			Title:    "The Docker API could not be read; the diagnosis is partial",
			Detail: "Without Docker's list of networks, containers and published ports, iptscope cannot say which rules " +
				"should exist: checks that compare the rules with Docker's view were skipped. Host-level checks " +
				"(IP forwarding, backends, docker-proxy) still ran.",
			Fix: "Run iptscope as root (or a member of the docker group) on the Docker host, or point it at the daemon " +
				"with DOCKER_HOST; check `docker info` works. If dockerd is not running, start it: `systemctl start docker`.",
		}
		if s.Docker != nil && s.Docker.Inferred {
			f.Detail = "Without Docker's list of networks, containers and published ports, iptscope inferred what it could " +
				"from the host: bridges and their addresses, neighbours, docker-proxy arguments and the rules' layout " +
				"(see the notes). The rule checks ran on that view only: networks and ports that left no trace were not " +
				"checked, and no rule was called stale."
		}
		if s.Docker == nil {
			f.Evidence = []string{"the snapshot has no Docker section"}
		} else {
			f.Evidence = []string{"docker API " + s.Docker.Host + ": " + s.Docker.Error}
		}
		for _, e := range s.Errors {
			if e.Part == "docker" {
				f.Evidence = append(f.Evidence, "collect: "+e.Error)
			}
		}
		return []Finding{f}
	},
}
