// Command synth writes a large synthetic iptables-save dump to stdout, for
// benchmarks and for trying iptscope on a big host:
//
//	go run ./hack/synth -kind docker -ports 33000 > docker-100k.txt   # ~100,700 rules
//	go run ./hack/synth -kind kube -services 5000 -endpoints 5 > kube.txt
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/iptscope/iptscope/internal/synth"
)

func main() {
	kind := flag.String("kind", "docker", "docker or kube")
	ports := flag.Int("ports", 25000, "docker: published ports (about 3 rules each)")
	services := flag.Int("services", 5000, "kube: services")
	endpoints := flag.Int("endpoints", 5, "kube: endpoints per service")
	flag.Parse()
	var out []byte
	switch *kind {
	case "docker":
		out = synth.DockerHost(*ports)
	case "kube":
		out = synth.KubeNode(*services, *endpoints)
	default:
		fmt.Fprintf(os.Stderr, "synth: unknown kind %q (docker or kube)\n", *kind)
		os.Exit(2)
	}
	os.Stdout.Write(out)
}
