package collect

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/iptscope/iptscope/snapshot"
)

func TestParseIPSetSaveKeepsMembersAndNomatch(t *testing.T) {
	in := `create docker-ext-bridges-v4 hash:net family inet hashsize 1024 maxelem 65536 bucketsize 12 initval 0x3c1a6b42
add docker-ext-bridges-v4 172.17.0.0/16
add docker-ext-bridges-v4 10.1.0.0/16 nomatch
create svc hash:ip,port family inet6 hashsize 1024 maxelem 65536 timeout 300
add svc fd00::2,tcp:80 timeout 120
create empty bitmap:port range 0-65535
`
	got, err := ParseIPSetSave([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []snapshot.IPSet{
		{Name: "docker-ext-bridges-v4", Type: "hash:net", Family: "inet", Members: []string{"172.17.0.0/16", "10.1.0.0/16 nomatch"}},
		{Name: "svc", Type: "hash:ip,port", Family: "inet6", Members: []string{"fd00::2,tcp:80"}},
		{Name: "empty", Type: "bitmap:port", Members: []string{}},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Error(d)
	}
	if _, err := ParseIPSetSave([]byte("add nosuch 1.2.3.4\n")); err == nil {
		t.Error("an add to a set never created is an error")
	}
	if got, err := ParseIPSetSave(nil); err != nil || got == nil || len(got) != 0 {
		t.Errorf("no output is no set: %v, %v", got, err)
	}
}
