package build

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/meshnode/meshnode/feeds/pgp"
	"github.com/meshnode/meshnode/feeds/usign"
	"github.com/meshnode/meshnode/internal/atomicfile"
)

// Keys sign a feed: usign for opkg, OpenPGP for the SHA256SUMS manifest.
type Keys struct {
	Usign       *usign.SecretKey
	PGP         *pgp.Signer
	Development bool   // generated dev keys, not release keys
	Source      string // where they came from, for the build log
}

// KeySource says where release keys are. Each key may be given as a file
// path or, for CI secrets, as the file's content in an environment variable.
type KeySource struct {
	UsignFile, UsignData string // MESHNODE_USIGN_KEY, MESHNODE_USIGN_SECRET
	PGPFile, PGPData     string // MESHNODE_PGP_KEY, MESHNODE_PGP_SECRET
}

// KeySourceFromEnv reads the four environment variables through getenv.
func KeySourceFromEnv(getenv func(string) string) KeySource {
	return KeySource{
		UsignFile: getenv("MESHNODE_USIGN_KEY"), UsignData: getenv("MESHNODE_USIGN_SECRET"),
		PGPFile: getenv("MESHNODE_PGP_KEY"), PGPData: getenv("MESHNODE_PGP_SECRET"),
	}
}

func (s KeySource) empty() bool {
	return s.UsignFile == "" && s.UsignData == "" && s.PGPFile == "" && s.PGPData == ""
}

// LoadKeys returns release keys when any are configured (then both kinds
// must be), else the development keys under devDir, creating them once.
// warn receives the plain-language notice that a dev key is in use.
func LoadKeys(src KeySource, devDir string, warn io.Writer) (*Keys, error) {
	if src.empty() {
		return devKeys(devDir, warn)
	}
	k := &Keys{Source: "release keys"}
	usData, usName, err := keyBytes(src.UsignFile, src.UsignData, "MESHNODE_USIGN_KEY", "MESHNODE_USIGN_SECRET")
	if err != nil {
		return nil, err
	}
	pgData, pgName, err := keyBytes(src.PGPFile, src.PGPData, "MESHNODE_PGP_KEY", "MESHNODE_PGP_SECRET")
	if err != nil {
		return nil, err
	}
	if k.Usign, err = usign.ParseSecretKey(usData); err != nil {
		return nil, fmt.Errorf("%s: usign secret key: %w", usName, err)
	}
	if k.PGP, err = pgp.LoadSigner(pgData); err != nil {
		return nil, fmt.Errorf("%s: OpenPGP secret key: %w", pgName, err)
	}
	warnLooseMode(src.UsignFile, warn)
	warnLooseMode(src.PGPFile, warn)
	return k, nil
}

func keyBytes(file, data, fileVar, dataVar string) ([]byte, string, error) {
	switch {
	case file != "" && data != "":
		return nil, "", fmt.Errorf("both %s and %s are set; give the key one way", fileVar, dataVar)
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, "", fmt.Errorf("%s: %w", fileVar, err)
		}
		return b, file, nil
	case data != "":
		return []byte(data), "$" + dataVar, nil
	}
	return nil, "", fmt.Errorf("%s (or %s) is not set: a release build needs both the usign and the OpenPGP key", fileVar, dataVar)
}

func warnLooseMode(file string, warn io.Writer) {
	if file == "" {
		return
	}
	if st, err := os.Stat(file); err == nil && st.Mode().Perm()&0o077 != 0 {
		fmt.Fprintf(warn, "warning: %s is readable by other users (mode %04o); chmod 600 it\n", file, st.Mode().Perm())
	}
}

// Development key files under the dev key directory.
const (
	DevUsignSecret = "dev-usign.sec"
	DevUsignPublic = "dev-usign.pub"
	DevPGPSecret   = "dev-pgp.sec.asc"
	DevPGPPublic   = "dev-pgp.pub.asc"
)

func devKeys(dir string, warn io.Writer) (*Keys, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	usSec := filepath.Join(dir, DevUsignSecret)
	pgSec := filepath.Join(dir, DevPGPSecret)
	_, errU := os.Stat(usSec)
	_, errP := os.Stat(pgSec)
	if errors.Is(errU, os.ErrNotExist) != errors.Is(errP, os.ErrNotExist) {
		return nil, fmt.Errorf("%s: only one of %s and %s exists; remove the directory to make a new development key pair", dir, DevUsignSecret, DevPGPSecret)
	}
	created := false
	if errors.Is(errU, os.ErrNotExist) {
		if err := makeDevKeys(dir); err != nil {
			return nil, err
		}
		created = true
	}
	usData, err := os.ReadFile(usSec)
	if err != nil {
		return nil, err
	}
	pgData, err := os.ReadFile(pgSec)
	if err != nil {
		return nil, err
	}
	k := &Keys{Development: true, Source: "development keys in " + dir}
	if k.Usign, err = usign.ParseSecretKey(usData); err != nil {
		return nil, fmt.Errorf("%s: %w", usSec, err)
	}
	if k.PGP, err = pgp.LoadSigner(pgData); err != nil {
		return nil, fmt.Errorf("%s: %w", pgSec, err)
	}
	verb := "using"
	if created {
		verb = "created"
	}
	fmt.Fprintf(warn, "NOTE: %s DEVELOPMENT signing keys in %s (usign %s, OpenPGP %s).\n"+
		"      They are for testing only: anyone with this checkout can sign for them.\n"+
		"      For a release set MESHNODE_USIGN_KEY and MESHNODE_PGP_KEY (see README).\n",
		verb, dir, k.Usign.Fingerprint(), k.PGP.Fingerprint())
	return k, nil
}

func makeDevKeys(dir string) error {
	sk, err := usign.Generate(rand.Reader, "meshnode DEVELOPMENT feed key")
	if err != nil {
		return err
	}
	sec, pub, err := pgp.GenerateKey("meshnode development feed key", "DEVELOPMENT, not for release", "", time.Now())
	if err != nil {
		return err
	}
	for _, f := range []struct {
		name string
		data []byte
		mode os.FileMode
	}{
		{DevUsignSecret, sk.Marshal(), 0o600},
		{DevUsignPublic, sk.Public().Marshal(), 0o644},
		{DevPGPSecret, sec, 0o600},
		{DevPGPPublic, pub, 0o644},
	} {
		if err := atomicfile.WriteFile(filepath.Join(dir, f.name), f.data, f.mode); err != nil {
			return err
		}
	}
	return nil
}
