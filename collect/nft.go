package collect

import (
	"context"
	"errors"
	"fmt"
	"os/exec"

	"github.com/iptscope/iptscope/snapshot"
)

// NftListArgs are the arguments of the two reads of the native nftables
// ruleset: JSON for the model, text for people.
var (
	NftListJSONArgs = []string{"-j", "list", "ruleset"}
	NftListArgs     = []string{"list", "ruleset"}
)

// CollectNftables reads the whole nftables ruleset with `nft -j list
// ruleset` and `nft list ruleset`, inside the target namespace when inNS is
// set. A host without nft gives NotInstalled and no error; a failed or
// unparsable read gives Error (the text, when it was read, is kept).
//
// Why the nft tool and not netlink (github.com/google/nftables v0.3.0):
// on a ruleset of 100,000 rules in a throw-away namespace (2 shared cores,
// medians of 5 runs of 3) `nft -j list ruleset` plus nft.Parse took about
// 12 s and google/nftables' ListTables, ListChains and GetRules about 25 s
// with undecoded expressions; and nft's JSON is libnftables' own decoding
// of every expression, which the netlink expression types would make us
// redo.
func CollectNftables(ctx context.Context, r Runner, inNS func(func() error) error) *snapshot.NftRuleset {
	var jsonOut, textOut []byte
	var jsonErr, textErr error
	read := func() error {
		jsonOut, jsonErr = r.Run(ctx, "nft", NftListJSONArgs, nil)
		if jsonErr == nil {
			textOut, textErr = r.Run(ctx, "nft", NftListArgs, nil)
		}
		return nil
	}
	if inNS != nil {
		if err := inNS(read); err != nil {
			return &snapshot.NftRuleset{Error: fmt.Sprintf("reading the nftables ruleset: %v", err)}
		}
	} else {
		read()
	}
	if errors.Is(jsonErr, exec.ErrNotFound) {
		return &snapshot.NftRuleset{NotInstalled: true}
	}
	if jsonErr != nil {
		return &snapshot.NftRuleset{Error: fmt.Sprintf("reading the nftables ruleset: %v", needsRoot(jsonErr))}
	}
	n := snapshot.NewNftRuleset(jsonOut, string(textOut))
	if textErr != nil && n.Error == "" {
		n.Error = fmt.Sprintf("reading the nftables ruleset as text: %v", textErr)
	}
	return n
}
