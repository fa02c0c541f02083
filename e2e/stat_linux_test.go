package e2e

import "syscall"

type fileStat struct{ ino uint64 }

func statInode(path string, st *fileStat) error {
	var s syscall.Stat_t
	if err := syscall.Stat(path, &s); err != nil {
		return err
	}
	st.ino = s.Ino
	return nil
}
