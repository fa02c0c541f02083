//go:build !linux

package collect

import "fmt"

// legacyTablesInfo needs Linux; PollRules then hashes the dump each time.
func legacyTablesInfo(string) (string, error) {
	return "", fmt.Errorf("legacy table info: %w", ErrNeedsLinux)
}
