package usign

import (
	"os"
	"path/filepath"
	"strings"

	"github.com/meshnode/meshnode/internal/errfmt"
)

// LoadKeyDir reads a directory laid out like /etc/opkg/keys: one public key
// file per key, named by its fingerprint. The result maps fingerprint to key.
//
// usign opens <dir>/<fingerprint of the signature>, so a key stored under any
// other name is never found on the device; such a file is an error naming it
// rather than a silent skip. Subdirectories and dot files (.gitkeep) are
// ignored.
func LoadKeyDir(dir string) (map[string]*PublicKey, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	keys := make(map[string]*PublicKey, len(entries))
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || strings.HasPrefix(name, ".") {
			continue
		}
		path := filepath.Join(dir, name)
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		k, err := ParsePublicKey(data)
		if err != nil {
			return nil, errfmt.Errorf("%s: %w", path, err)
		}
		if fp := k.Fingerprint(); fp != name {
			return nil, errfmt.Errorf("%s: holds key %s but usign looks keys up by file name; rename it to %s",
				path, fp, filepath.Join(dir, fp))
		}
		keys[name] = k
	}
	return keys, nil
}
