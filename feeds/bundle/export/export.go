// Package export writes signed USB bundles on the CA's machine. It is apart
// from feeds/bundle, which routers run to import them, so that routers do
// not carry the CA's key handling and feed verification.
package export

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/meshnode/meshnode/feeds/bundle"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/meshnode/meshnode/ca"
	"github.com/meshnode/meshnode/feeds/pgp"
	"github.com/meshnode/meshnode/feeds/usign"
	"github.com/meshnode/meshnode/feeds/verify"
	"github.com/meshnode/meshnode/internal/atomicfile"
)

// VersionFile in the CA directory holds the last bundle version issued,
// so bundles exported to different drives still count up.
const VersionFile = "bundle.version"

// ExportOptions say what goes into a bundle.
type ExportOptions struct {
	To       string   // the bundle directory, usually on a mounted drive
	CADir    string   // an opened CA's directory (ca.Open checks its keys)
	FeedDir  string   // out/feed; "" for no feeds
	Arches   []string // architectures to copy from FeedDir
	Firmware []string // image files to carry
	Now      time.Time
}

// source is one file to place in the bundle.
type source struct {
	data []byte // or
	from string // a file to copy
}

// Export writes (or merges into) a signed bundle and returns its manifest.
// Content is written first and the manifest and signature last, so a
// drive pulled mid-export holds a bundle every node refuses.
func Export(o ExportOptions) (*bundle.Manifest, error) {
	c, err := ca.Open(o.CADir)
	if err != nil {
		return nil, err
	}
	skData, err := os.ReadFile(filepath.Join(o.CADir, ca.UsignSec))
	if err != nil {
		return nil, err
	}
	sk, err := usign.ParseSecretKey(skData)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(o.CADir, ca.UsignSec), err)
	}
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	if err := os.MkdirAll(o.To, 0o755); err != nil {
		return nil, err
	}

	// An existing bundle must be ours and intact before we build on it.
	var old *bundle.Manifest
	if _, err := os.Stat(filepath.Join(o.To, bundle.ManifestFile)); err == nil {
		old, err = bundle.VerifySignature(o.To, map[string]*usign.PublicKey{sk.Fingerprint(): sk.Public()})
		if err != nil {
			return nil, fmt.Errorf("cannot merge into the bundle at %s: %w; export to an empty directory instead", o.To, err)
		}
	}

	files := map[string]source{}
	if old != nil {
		// Merge: keep feeds of other architectures and firmware images.
		for _, f := range old.Files {
			if strings.HasPrefix(f.Path, bundle.FeedDir+"/") || strings.HasPrefix(f.Path, bundle.FirmwareDir+"/") {
				files[f.Path] = source{from: filepath.Join(o.To, filepath.FromSlash(f.Path))}
			}
		}
	}
	files[bundle.CACertPath] = source{data: c.CertPEM()}
	files[bundle.BlocklistPth] = source{data: c.Blocklist()}
	alertPub, err := os.ReadFile(filepath.Join(o.CADir, ca.AlertPub))
	if err != nil {
		return nil, err
	}
	files[bundle.AlertKeys] = source{data: alertPub}
	if err := addIssued(files, c); err != nil {
		return nil, err
	}
	if len(o.Arches) > 0 {
		keys, err := caFeedKeys(o.CADir)
		if err != nil {
			return nil, err
		}
		for _, arch := range o.Arches {
			if err := addFeed(files, o.FeedDir, arch, keys); err != nil {
				return nil, err
			}
		}
	}
	for _, img := range o.Firmware {
		p := bundle.FirmwareDir + "/" + filepath.Base(img)
		if err := bundle.CheckPath(p); err != nil {
			return nil, fmt.Errorf("%s: %w", img, err)
		}
		files[p] = source{from: img}
	}

	version := uint64(1)
	if old != nil {
		version = old.Version + 1
	}
	if b, err := os.ReadFile(filepath.Join(o.CADir, VersionFile)); err == nil {
		n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%s: not a number", filepath.Join(o.CADir, VersionFile))
		}
		version = max(version, n+1)
	}
	created := o.Now.UTC().Truncate(time.Second)
	if old != nil && created.Before(old.Created) {
		created = old.Created // a laptop clock behind the last export must not look like a rollback
	}
	m := &bundle.Manifest{Version: version, Created: created}

	paths := make([]string, 0, len(files))
	for p := range files {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	// Hash and write into staging names first; the sources may be the
	// bundle's own files (merge), so nothing is renamed over them early.
	for _, p := range paths {
		f, err := place(o.To, p, files[p])
		if err != nil {
			return nil, err
		}
		m.Files = append(m.Files, f)
	}
	// Claim the version before the bundle that carries it is complete.
	if err := atomicfile.WriteFile(filepath.Join(o.CADir, VersionFile), []byte(strconv.FormatUint(version, 10)+"\n"), 0o600); err != nil {
		return nil, err
	}
	body := m.Marshal()
	// Old signature first: MANIFEST new + .sig old is refused, never trusted.
	if err := os.Remove(filepath.Join(o.To, bundle.SigFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	if err := atomicfile.WriteFile(filepath.Join(o.To, bundle.ManifestFile), body, 0o644); err != nil {
		return nil, err
	}
	if err := atomicfile.WriteFile(filepath.Join(o.To, bundle.SigFile), usign.Sign(sk, body).Marshal(), 0o644); err != nil {
		return nil, err
	}
	if old != nil {
		for _, f := range old.Files {
			if _, ok := files[f.Path]; !ok {
				p := filepath.Join(o.To, filepath.FromSlash(f.Path))
				os.Remove(p)
				// Empty directories go too (Remove fails on non-empty ones).
				for d := filepath.Dir(p); d != filepath.Clean(o.To) && os.Remove(d) == nil; d = filepath.Dir(d) {
				}
			}
		}
	}
	return m, nil
}

// place writes one file into the bundle and returns its manifest entry.
func place(root, p string, s source) (bundle.File, error) {
	dst := filepath.Join(root, filepath.FromSlash(p))
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return bundle.File{}, err
	}
	data := s.data
	if data == nil {
		if abs(s.from) == abs(dst) {
			return hashFile(dst, p)
		}
		var err error
		if data, err = os.ReadFile(s.from); err != nil {
			return bundle.File{}, err
		}
	}
	if cur, err := os.ReadFile(dst); err != nil || string(cur) != string(data) {
		if err := atomicfile.WriteFile(dst, data, 0o644); err != nil {
			return bundle.File{}, err
		}
	}
	sum := sha256.Sum256(data)
	return bundle.File{Path: p, Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:])}, nil
}

func abs(p string) string { a, _ := filepath.Abs(p); return a }

func hashFile(file, p string) (bundle.File, error) {
	f, err := os.Open(file)
	if err != nil {
		return bundle.File{}, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return bundle.File{}, err
	}
	return bundle.File{Path: p, Size: n, SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}

// addIssued adds every certificate waiting in the CA's issued/ directory.
func addIssued(files map[string]source, c *ca.CA) error {
	dir := filepath.Join(c.Dir, ca.IssuedDir)
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		if _, ok := c.Ledger().Active(e.Name()); !ok {
			continue // revoked since: its certificate must not travel
		}
		for _, f := range []string{ca.IssuedCert, ca.IssuedCA, ca.IssuedLighthouses} {
			src := filepath.Join(dir, e.Name(), f)
			data, err := os.ReadFile(src)
			if errors.Is(err, fs.ErrNotExist) && f == ca.IssuedLighthouses {
				continue
			}
			if err != nil {
				return err
			}
			files[path.Join(bundle.CertsDir, e.Name(), f)] = source{data: data}
		}
	}
	return nil
}

// caFeedKeys are the CA's own feed keys: a feed goes on a drive only if
// it verifies against them.
func caFeedKeys(dir string) (verify.Keys, error) {
	pubData, err := os.ReadFile(filepath.Join(dir, ca.UsignPub))
	if err != nil {
		return verify.Keys{}, err
	}
	pub, err := usign.ParsePublicKey(pubData)
	if err != nil {
		return verify.Keys{}, err
	}
	armored, err := os.ReadFile(filepath.Join(dir, ca.PGPPub))
	if err != nil {
		return verify.Keys{}, err
	}
	ring, err := pgp.LoadKeyRing(armored)
	if err != nil {
		return verify.Keys{}, err
	}
	return verify.Keys{Usign: map[string]*usign.PublicKey{pub.Fingerprint(): pub}, PGP: ring}, nil
}

func addFeed(files map[string]source, feedRoot, arch string, keys verify.Keys) error {
	if strings.ContainsAny(arch, "/\\") || arch == "" || arch == "." || arch == ".." {
		return fmt.Errorf("architecture %q is not a name", arch)
	}
	dir := filepath.Join(feedRoot, arch)
	rep, err := verify.Feed(dir, keys)
	if err != nil {
		return err
	}
	if !rep.OK() {
		return fmt.Errorf("%s does not verify against the CA's feed keys (%d problems, first: %s); was it signed with them?",
			dir, len(rep.Problems), rep.Problems[0])
	}
	// A re-exported architecture replaces the old one entirely.
	for p := range files {
		if strings.HasPrefix(p, bundle.FeedDir+"/"+arch+"/") {
			delete(files, p)
		}
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if !e.Type().IsRegular() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		p := path.Join(bundle.FeedDir, arch, e.Name())
		if err := bundle.CheckPath(p); err != nil {
			return fmt.Errorf("%s: %w", filepath.Join(dir, e.Name()), err)
		}
		files[p] = source{from: filepath.Join(dir, e.Name())}
	}
	return nil
}
