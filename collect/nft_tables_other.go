//go:build !linux

package collect

import "errors"

func nftObjects(string) ([]nftTableRef, error) {
	return nil, errors.New("nftables netlink needs Linux")
}
