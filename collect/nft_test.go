package collect

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"testing"
)

func TestCollectNftables(t *testing.T) {
	js, err := os.ReadFile("../fixtures/docker-29-nftables-proxy-off-healthy/nft-ruleset.json")
	if err != nil {
		t.Fatal(err)
	}
	txt, err := os.ReadFile("../fixtures/docker-29-nftables-proxy-off-healthy/nft-ruleset.txt")
	if err != nil {
		t.Fatal(err)
	}
	t.Run("the JSON and the text are read and the JSON parsed", func(t *testing.T) {
		f := &FakeRunner{Script: []Call{
			{Name: "nft", Args: NftListJSONArgs, Stdout: string(js)},
			{Name: "nft", Args: NftListArgs, Stdout: string(txt)},
		}}
		n := CollectNftables(context.Background(), f, nil)
		if err := f.Done(); err != nil {
			t.Fatal(err)
		}
		if n.Error != "" || n.Ruleset == nil || n.Text != string(txt) {
			t.Fatalf("error %q, ruleset %v, text %d bytes", n.Error, n.Ruleset != nil, len(n.Text))
		}
		if n.Ruleset.Table("ip", "docker-bridges") == nil {
			t.Error("no table ip docker-bridges")
		}
	})
	t.Run("a host without nft gives an empty part, not an error", func(t *testing.T) {
		f := &FakeRunner{Script: []Call{{Name: "nft", Args: NftListJSONArgs, Err: fmt.Errorf("running nft: %w", exec.ErrNotFound)}}}
		n := CollectNftables(context.Background(), f, nil)
		if !n.NotInstalled || n.Error != "" {
			t.Errorf("%+v, want NotInstalled and no error", n)
		}
	})
	t.Run("a failing nft is an error of the part", func(t *testing.T) {
		f := &FakeRunner{Script: []Call{{Name: "nft", Args: NftListJSONArgs, Err: &ExitError{Cmd: "nft -j list ruleset", Code: 1, Stderr: "Operation not permitted"}}}}
		n := CollectNftables(context.Background(), f, nil)
		if n.Error == "" || n.NotInstalled {
			t.Errorf("%+v, want an error", n)
		}
	})
	t.Run("unparsable JSON keeps the text and says why", func(t *testing.T) {
		f := &FakeRunner{Script: []Call{
			{Name: "nft", Args: NftListJSONArgs, Stdout: `{"nftables": [{"rule": {}}]}`},
			{Name: "nft", Args: NftListArgs, Stdout: "table ip t {\n}\n"},
		}}
		n := CollectNftables(context.Background(), f, nil)
		if n.Error == "" || n.Ruleset != nil || n.Text == "" {
			t.Errorf("%+v", n)
		}
	})
}
