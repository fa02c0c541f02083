//go:build !linux

package collect

import (
	"context"
	"fmt"

	"github.com/iptscope/iptscope/watch"
)

// WatchNftables needs Linux's netlink; elsewhere it returns ErrNeedsLinux.
func WatchNftables(context.Context, Options) (<-chan watch.Change, error) {
	return nil, fmt.Errorf("watching nftables events: %w", ErrNeedsLinux)
}

// HostStateHash needs Linux; elsewhere it returns ErrNeedsLinux.
func HostStateHash(context.Context, Options) ([32]byte, error) {
	return [32]byte{}, fmt.Errorf("reading the host's state: %w", ErrNeedsLinux)
}
