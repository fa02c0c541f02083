package watch

import (
	"os"
	"path/filepath"
	"testing"
)

func TestWriteFileAtomicReplacesTheFileAndLeavesNoTemporary(t *testing.T) {
	dir := t.TempDir()
	for _, content := range []string{"iptscope_up 1\n", "iptscope_up 0\n"} {
		if err := WriteFileAtomic(dir, TextfileName, []byte(content)); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(dir, TextfileName))
		if err != nil || string(got) != content {
			t.Fatalf("read %q, %v; want %q", got, err, content)
		}
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Errorf("%d files in the directory, want only %s", len(ents), TextfileName)
	}
	if err := WriteFileAtomic(filepath.Join(dir, "missing"), TextfileName, nil); err == nil {
		t.Error("no error for a missing directory")
	}
}
