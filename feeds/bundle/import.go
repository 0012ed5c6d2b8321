package bundle

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/meshnode/meshnode/ca/enroll"
	"github.com/meshnode/meshnode/ca/exchange"
	"github.com/meshnode/meshnode/feeds/index"
	"github.com/meshnode/meshnode/feeds/usign"
	"github.com/meshnode/meshnode/internal/atomicfile"
	"github.com/meshnode/meshnode/internal/errfmt"
	"github.com/meshnode/meshnode/lora-bridge/alert"
)

// RefusedError says why a bundle was refused; nothing was applied.
type RefusedError struct {
	File string // the file at fault, with the bundle directory
	Msg  string
}

func (e *RefusedError) Error() string {
	return "bundle refused, nothing applied: " + e.File + ": " + e.Msg
}

// refuse is the error for file in the bundle in dir. Not inlined: it is
// called from a dozen error paths.
//
//go:noinline
func refuse(dir, file, msg string) error {
	return &RefusedError{File: filepath.Join(dir, filepath.FromSlash(file)), Msg: msg}
}

// verifySignature reads MANIFEST and checks MANIFEST.sig against keys.
func VerifySignature(dir string, keys map[string]*usign.PublicKey) (*Manifest, error) {
	body, err := os.ReadFile(filepath.Join(dir, ManifestFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, refuse(dir, ManifestFile, "missing: not a bundle, or the export did not finish")
	}
	if err != nil {
		return nil, err
	}
	sigData, err := os.ReadFile(filepath.Join(dir, SigFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, refuse(dir, SigFile, "missing: the bundle is not signed (or the export did not finish)")
	}
	if err != nil {
		return nil, err
	}
	sig, err := usign.ParseSignature(sigData)
	if err != nil {
		return nil, refuse(dir, SigFile, err.Error())
	}
	pub, ok := keys[sig.Fingerprint()]
	if !ok {
		return nil, refuse(dir, SigFile, "signed by key "+sig.Fingerprint()+", which is not trusted here")
	}
	if err := usign.Verify(pub, body, sig); err != nil {
		return nil, refuse(dir, ManifestFile, "does not match its signature (changed, damaged or half-written)")
	}
	m, err := ParseManifest(body)
	if err != nil {
		return nil, refuse(dir, ManifestFile, err.Error())
	}
	return m, nil
}

// State is what a node remembers of the last bundle it applied.
type State struct {
	Version uint64
	Created time.Time
	Digest  string // SHA-256 of the manifest
}

func (s *State) marshal() []byte {
	return []byte("version " + strconv.FormatUint(s.Version, 10) + "\ncreated " + s.Created.UTC().Format(time.RFC3339) + "\ndigest " + s.Digest + "\n")
}

func parseState(data []byte) (State, error) {
	var s State
	for _, l := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		k, v, _ := strings.Cut(l, " ")
		var err error
		switch k {
		case "version":
			s.Version, err = strconv.ParseUint(v, 10, 64)
		case "created":
			s.Created, err = time.Parse(time.RFC3339, v)
		case "digest":
			s.Digest = v
		default:
			err = errfmt.Errorf("unknown line %q", clip(l))
		}
		if err != nil {
			return s, err
		}
	}
	return s, nil
}

// Verified is a bundle whose every file matched the signed manifest. Small
// files are kept in memory, so what was checked is what gets used.
type Verified struct {
	Dir      string
	Manifest *Manifest
	Digest   string
	small    map[string][]byte
}

// Verify checks the signature, the rollback state and every file of the
// bundle in dir. Files in the bundle that the manifest does not list are
// refused too, apart from the unsigned write-back areas.
func Verify(dir string, keys map[string]*usign.PublicKey, last State) (*Verified, error) {
	m, err := VerifySignature(dir, keys)
	if err != nil {
		return nil, err
	}
	body := m.Marshal()
	sum := sha256.Sum256(body)
	v := &Verified{Dir: dir, Manifest: m, Digest: hex.EncodeToString(sum[:]), small: map[string][]byte{}}
	version, lastCreated := strconv.FormatUint(m.Version, 10), last.Created.UTC().Format(time.RFC3339)
	msg := ""
	switch {
	case m.Version < last.Version:
		msg = "version " + version + " is older than version " + strconv.FormatUint(last.Version, 10) +
			" applied here on " + lastCreated + ": refusing a rollback"
	case m.Version == last.Version && v.Digest != last.Digest:
		msg = "version " + version + " was already applied here with different content: refusing it"
	case m.Created.Before(last.Created):
		msg = "created " + m.Created.Format(time.RFC3339) + ", before the bundle applied here (" + lastCreated + "): refusing a rollback"
	}
	if msg != "" {
		return nil, refuse(dir, ManifestFile, msg)
	}
	listed := map[string]bool{}
	for _, f := range m.Files {
		listed[f.Path] = true
	}
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		top, _, _ := strings.Cut(rel, "/")
		switch {
		case rel == "." || rel == ManifestFile || rel == SigFile:
		case top == RequestsDir || top == StatusDir || strings.HasPrefix(path.Base(rel), "."):
			// The unsigned write-back areas; staging files of an
			// interrupted export, or the OS's own (.Trashes,
			// .fseventsd): never read, so harmless.
			if d.IsDir() {
				return fs.SkipDir
			}
		case d.IsDir():
		case !d.Type().IsRegular():
			return refuse(dir, rel, "not a regular file")
		case !listed[rel]:
			return refuse(dir, rel, "not listed in the signed MANIFEST")
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for i := range m.Files {
		f := &m.Files[i]
		keep := !strings.HasPrefix(f.Path, FeedDir+"/") && !strings.HasPrefix(f.Path, FirmwareDir+"/")
		data, err := checkFile(dir, f, keep)
		if err != nil {
			return nil, err
		}
		if keep {
			v.small[f.Path] = data
		}
	}
	return v, nil
}

// checkFile hashes one file and compares it with the manifest.
func checkFile(dir string, f *File, keep bool) ([]byte, error) {
	fh, err := os.Open(filepath.Join(dir, filepath.FromSlash(f.Path)))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, refuse(dir, f.Path, "missing (listed in MANIFEST; was the drive pulled during export?)")
	}
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	// A kept file is read into memory and hashed there; io.MultiWriter
	// would cost more flash on MIPS.
	h := sha256.New()
	var buf bytes.Buffer
	w := io.Writer(h)
	if keep {
		w = &buf
	}
	// Read one byte past the size so a longer file shows.
	n, err := io.Copy(w, io.LimitReader(fh, f.Size+1))
	if err != nil {
		return nil, refuse(dir, f.Path, "read error: "+err.Error())
	}
	h.Write(buf.Bytes())
	if n != f.Size {
		return nil, refuse(dir, f.Path, "size differs from the signed MANIFEST (cut short or changed)")
	}
	if hex.EncodeToString(h.Sum(nil)) != f.SHA256 {
		return nil, refuse(dir, f.Path, "SHA-256 does not match the signed MANIFEST (changed or damaged)")
	}
	return buf.Bytes(), nil
}

// Opkg installs package updates from a verified file:// feed; a seam so
// tests need no opkg.
type Opkg interface {
	// Upgrade upgrades, from the feed in dir, those of pkgs that are
	// installed, and returns what it upgraded.
	Upgrade(ctx context.Context, dir string, pkgs []string) ([]string, error)
}

// Importer applies bundles on a node.
type Importer struct {
	Node     *enroll.Node
	KeyDir   string // trusted usign keys, /etc/opkg/keys
	State    string // last applied bundle, e.g. /etc/meshnode/bundle.state
	Arch     string // the node's opkg architecture; "" skips updates
	Opkg     Opkg   // nil skips updates
	Hostname string // names the status file when the node has no certificate yet
}

// Result is what one import did.
type Result struct {
	Version     uint64
	Certificate *enroll.Installed
	Blocklist   int
	AlertKeys   int
	Upgraded    []string
	Notes       []string
	Request     string // where the pending request was written on the drive
}

// Import verifies the bundle in dir and only then applies it. Whatever the
// outcome, a status line is written back to the drive.
func (im *Importer) Import(ctx context.Context, dir string) (*Result, error) {
	keys, err := usign.LoadKeyDir(im.KeyDir)
	if err != nil {
		return nil, errfmt.Errorf("trusted keys %s: %w", im.KeyDir, err)
	}
	var last State
	if data, err := os.ReadFile(im.State); err == nil {
		if last, err = parseState(data); err != nil {
			return nil, errfmt.Errorf("%s: %w", im.State, err)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	v, err := Verify(dir, keys, last)
	if err != nil {
		im.writeBack(dir, nil, err)
		return nil, err
	}
	res, err := im.apply(ctx, v)
	if err == nil {
		st := State{Version: v.Manifest.Version, Created: v.Manifest.Created, Digest: v.Digest}
		err = atomicfile.WriteFile(im.State, st.marshal(), 0o644)
	}
	im.writeBack(dir, res, err)
	return res, err
}

func (im *Importer) apply(ctx context.Context, v *Verified) (*Result, error) {
	res := &Result{Version: v.Manifest.Version}
	n := im.Node
	// Parse everything before installing anything. A missing file parses
	// as empty.
	blData, haveBlocklist := v.small[BlocklistPth]
	blocklist, err := exchange.ParseBlocklist(blData)
	if err != nil {
		return res, refuse(v.Dir, BlocklistPth, err.Error())
	}
	var alertKeys []string
	for i, l := range strings.Split(strings.TrimSpace(string(v.small[AlertKeys])), "\n") {
		if l = strings.TrimSpace(l); l == "" {
			continue
		}
		if _, err := alert.ParseKey(l); err != nil {
			return res, refuse(v.Dir, AlertKeys, "line "+strconv.Itoa(i+1)+": "+err.Error())
		}
		alertKeys = append(alertKeys, l)
	}
	blocklistChanged := false
	if haveBlocklist {
		if blocklistChanged, err = writeIfChanged(filepath.Join(n.Dir, enroll.BlocklistFile), blData); err != nil {
			return res, err
		}
		res.Blocklist = len(blocklist)
	}
	if alertKeys != nil {
		if _, err := writeIfChanged(filepath.Join(n.Dir, "alert-keys"), []byte(strings.Join(alertKeys, "\n")+"\n")); err != nil {
			return res, err
		}
		res.AlertKeys = len(alertKeys)
	}

	// A certificate waits for us if one matches our key. (Every file
	// under certs/ is in v.small.)
	var waiting []string
	for i := range v.Manifest.Files {
		p := v.Manifest.Files[i].Path
		if strings.HasPrefix(p, CertsDir+"/") && path.Base(p) == exchange.IssuedCert {
			waiting = append(waiting, path.Dir(p))
		}
	}
	slices.Sort(waiting)
	opts := enroll.ImportOptions{Blocklist: blocklist}
	for _, d := range waiting {
		r := &enroll.Response{Cert: v.small[d+"/"+exchange.IssuedCert], CA: v.small[d+"/"+exchange.IssuedCA],
			Lighthouses: v.small[d+"/"+exchange.IssuedLighthouses], Source: filepath.Join(v.Dir, d, exchange.IssuedCert)}
		if r.CA == nil {
			r.CA = v.small[CACertPath]
		}
		if _, err := n.Check(r, opts); err != nil {
			continue // another node's certificate
		}
		inst, err := n.Import(ctx, r, opts)
		if err != nil {
			return res, err
		}
		res.Certificate = inst
		break
	}
	// A new certificate reloads the agent already (enroll.Import); a new
	// blocklist alone must too, or revoked nodes keep their tunnels until
	// the next restart.
	if blocklistChanged && (res.Certificate == nil || !res.Certificate.Changed) && n.Reload != nil {
		if err := n.Reload(ctx); err != nil {
			return res, errfmt.Errorf("blocklist installed, but reloading the agent failed: %w", err)
		}
	}

	if im.Arch != "" && im.Opkg != nil {
		if err := im.upgrade(ctx, v, res); err != nil {
			return res, err
		}
	}
	for i := range v.Manifest.Files {
		if p := v.Manifest.Files[i].Path; strings.HasPrefix(p, FirmwareDir+"/") {
			res.Notes = append(res.Notes, "firmware image on the drive (not flashed automatically): "+p)
		}
	}
	return res, nil
}

// upgrade installs the package updates of the bundle's feed for im.Arch.
func (im *Importer) upgrade(ctx context.Context, v *Verified, res *Result) error {
	feed := path.Join(FeedDir, im.Arch)
	idxPath := feed + "/index.json"
	f, ok := v.Manifest.Lookup(idxPath)
	if !ok {
		res.Notes = append(res.Notes, "no feed for "+im.Arch+" in this bundle")
		return nil
	}
	data, err := os.ReadFile(filepath.Join(v.Dir, filepath.FromSlash(idxPath)))
	if err != nil {
		return err
	}
	// Re-check: the drive could have changed since Verify.
	if sum := sha256.Sum256(data); hex.EncodeToString(sum[:]) != f.SHA256 {
		return refuse(v.Dir, idxPath, "changed after verification")
	}
	_, idx, err := index.ParseIndexJSON(data)
	if err != nil {
		return refuse(v.Dir, idxPath, err.Error())
	}
	var pkgs []string
	for p := range idx {
		pkgs = append(pkgs, p)
	}
	slices.Sort(pkgs)
	abs, _ := filepath.Abs(filepath.Join(v.Dir, filepath.FromSlash(feed)))
	up, err := im.Opkg.Upgrade(ctx, abs, pkgs)
	res.Upgraded = up
	if err != nil {
		return errfmt.Errorf("opkg: %w", err)
	}
	return nil
}

// writeIfChanged reports whether it wrote: an unchanged file is left
// alone (flash wear, and no reload needed).
func writeIfChanged(p string, data []byte) (bool, error) {
	if cur, err := os.ReadFile(p); err == nil && bytes.Equal(cur, data) {
		return false, nil
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return false, err
	}
	return true, atomicfile.WriteFile(p, data, 0o644)
}

// writeBack leaves the node's pending request and a status report on the
// drive, so the operator collects both on the next visit. Failures here
// are not the import's: a read-only drive still gets its updates applied.
func (im *Importer) writeBack(dir string, res *Result, impErr error) {
	name := im.Hostname
	if c, err := os.ReadFile(filepath.Join(im.Node.Dir, enroll.CertFile)); err == nil {
		if crt, err := parseCertName(c); err == nil {
			name = crt
		}
	}
	req, _ := im.Node.Pending()
	if req != nil {
		name = req.Name
		p := filepath.Join(dir, RequestsDir, req.Name+".req")
		if os.MkdirAll(filepath.Dir(p), 0o755) == nil && atomicfile.WriteFile(p, req.Marshal(), 0o644) == nil && res != nil {
			res.Request = p
		}
	}
	if exchange.ValidName(name) != nil {
		name = "unnamed"
	}
	st := "node " + name + "\ntime " + time.Now().UTC().Format(time.RFC3339) + "\n"
	if impErr != nil {
		st += "result error: " + strings.ReplaceAll(impErr.Error(), "\n", " ") + "\n"
	} else {
		st += "result ok\n"
	}
	if res != nil {
		st += "bundle-version " + strconv.FormatUint(res.Version, 10) + "\nblocklist " + strconv.Itoa(res.Blocklist) +
			"\nalert-keys " + strconv.Itoa(res.AlertKeys) + "\n"
		if res.Certificate != nil {
			st += "certificate " + res.Certificate.Summary() + "\n"
		}
		if len(res.Upgraded) > 0 {
			st += "upgraded " + strings.Join(res.Upgraded, " ") + "\n"
		}
		for _, n := range res.Notes {
			st += "note " + n + "\n"
		}
	}
	if req != nil {
		st += "pending-request " + req.Fingerprint() + "\n"
	}
	p := filepath.Join(dir, StatusDir, name+".txt")
	if os.MkdirAll(filepath.Dir(p), 0o755) == nil {
		atomicfile.WriteFile(p, []byte(st), 0o644)
	}
}
