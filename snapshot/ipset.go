package snapshot

// IPSet is one ipset as `ipset save` prints it: its name, type
// ("hash:ip", "hash:net", "hash:ip,port", ...), family ("inet", "inet6")
// and members as written ("172.18.0.0/16", "10.0.0.1,tcp:80",
// "10.1.0.0/16 nomatch"). Snapshot.IPSets is nil when ipset was not read
// (no ipset tool, or a bundle from before iptscope read them) and empty
// when the namespace has no set.
type IPSet struct {
	Name    string   `json:"name"`
	Type    string   `json:"type"`
	Family  string   `json:"family,omitempty"`
	Members []string `json:"members"`
}

// IPSet returns the named set, or nil.
func (s *Snapshot) IPSet(name string) *IPSet {
	if s == nil {
		return nil
	}
	for i := range s.IPSets {
		if s.IPSets[i].Name == name {
			return &s.IPSets[i]
		}
	}
	return nil
}
