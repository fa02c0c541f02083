// Command bundle writes a synthetic `iptscope collect` bundle of a large
// Docker host to stdout, for benchmarks of whole commands:
//
//	go run ./hack/bundle -ports 33000 > /tmp/host-33k.json
//	go run ./hack/bundle -ports 1000 -flush nat/DOCKER > /tmp/flushed-1k.json
//
// The host has an uplink and its bridges (synth.WithUplink) unless
// -uplink=false.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/iptscope/iptscope/internal/synth"
)

func main() {
	ports := flag.Int("ports", 1000, "published ports")
	flush := flag.String("flush", "", "TABLE/CHAIN to flush in the rules (nat/DOCKER), as `iptables -t TABLE -F CHAIN` does")
	backend := flag.String("backend", "nft", "nft or legacy")
	uplink := flag.Bool("uplink", true, "give the host an uplink, its bridges and their routes (what the packet-path engine traces)")
	flag.Parse()
	dump := synth.DockerHost(*ports)
	if *flush != "" {
		t, c, ok := strings.Cut(*flush, "/")
		if !ok {
			fmt.Fprintln(os.Stderr, "bundle: -flush wants TABLE/CHAIN")
			os.Exit(2)
		}
		dump = synth.FlushChain(dump, t, c)
	}
	s := synth.DockerSnapshot(*ports, dump, *backend)
	if *uplink {
		synth.WithUplink(s)
	}
	enc := json.NewEncoder(os.Stdout)
	if err := enc.Encode(s); err != nil {
		fmt.Fprintln(os.Stderr, "bundle:", err)
		os.Exit(1)
	}
}
