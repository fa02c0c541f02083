// Command iptscope reads a host's netfilter rules and Docker's view of its
// networks, says what is broken and why, and repairs what Docker lost.
package main

import "os"

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
