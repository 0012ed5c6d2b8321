// Package bundle writes and reads signed USB bundles: feeds, the CA
// certificate, the blocklist, alert keys and certificates waiting for
// nodes, carried by hand when no network does. A bundle is a directory
// whose MANIFEST lists every signed file with its size and SHA-256;
// MANIFEST.sig is a usign signature by the community's feed key, which
// every node already trusts (/etc/opkg/keys). Its version and timestamp
// only ever grow, so an old bundle cannot be replayed.
package bundle

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Names in a bundle directory.
const (
	ManifestFile = "MANIFEST"
	SigFile      = "MANIFEST.sig"
	// Written back by nodes: not signed, never trusted by other nodes.
	RequestsDir = "requests"
	StatusDir   = "status"

	FeedDir      = "feed" // feed/<arch>/...
	CACertPath   = "ca/ca.crt"
	BlocklistPth = "ca/blocklist"
	AlertKeys    = "ca/alert-keys" // base64 Ed25519 public keys, one a line
	CertsDir     = "certs"         // certs/<name>/{node.crt,ca.crt,lighthouses}
	FirmwareDir  = "firmware"
)

const manifestMagic = "meshnode-bundle 1"

// Manifest is the signed table of contents.
type Manifest struct {
	Version uint64
	Created time.Time
	Files   []File // sorted by Path
}

// File is one signed file.
type File struct {
	Path   string
	Size   int64
	SHA256 string
}

// Marshal renders m; Files are sorted so two exports of the same content
// sign the same bytes.
func (m *Manifest) Marshal() []byte {
	fs := slices.Clone(m.Files)
	// sort.Slice: a generic sort per struct type costs ~13 KB on MIPS.
	sort.Slice(fs, func(i, j int) bool { return fs[i].Path < fs[j].Path })
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s\nversion %d\ncreated %s\n", manifestMagic, m.Version, m.Created.UTC().Format(time.RFC3339))
	for _, f := range fs {
		fmt.Fprintf(&b, "file %s %d %s\n", f.SHA256, f.Size, f.Path)
	}
	return b.Bytes()
}

// Lookup returns the entry for p.
func (m *Manifest) Lookup(p string) (File, bool) {
	i := slices.IndexFunc(m.Files, func(f File) bool { return f.Path == p })
	if i < 0 {
		return File{}, false
	}
	return m.Files[i], true
}

// ParseManifest reads a manifest written by Marshal, strictly: any line it
// does not understand is an error naming the line.
func ParseManifest(data []byte) (*Manifest, error) {
	if len(data) == 0 || data[len(data)-1] != '\n' {
		return nil, fmt.Errorf("empty or cut short (last line incomplete)")
	}
	lines := strings.Split(string(data[:len(data)-1]), "\n")
	if len(lines) < 3 || lines[0] != manifestMagic {
		return nil, fmt.Errorf("line 1: want %q", manifestMagic)
	}
	m := &Manifest{}
	v, ok := strings.CutPrefix(lines[1], "version ")
	n, err := strconv.ParseUint(v, 10, 64)
	if !ok || err != nil || n == 0 || strconv.FormatUint(n, 10) != v {
		return nil, fmt.Errorf("line 2: want 'version N' with N > 0")
	}
	m.Version = n
	c, ok := strings.CutPrefix(lines[2], "created ")
	t, err := time.Parse(time.RFC3339, c)
	if !ok || err != nil || t.UTC().Format(time.RFC3339) != c {
		return nil, fmt.Errorf("line 3: want 'created' and an RFC 3339 UTC time")
	}
	m.Created = t
	seen := map[string]bool{}
	for i, l := range lines[3:] {
		ln := i + 4
		rest, ok := strings.CutPrefix(l, "file ")
		parts := strings.SplitN(rest, " ", 3)
		if !ok || len(parts) != 3 {
			return nil, fmt.Errorf("line %d: want 'file SHA256 SIZE PATH'", ln)
		}
		f := File{SHA256: parts[0], Path: parts[2]}
		if b, err := hex.DecodeString(f.SHA256); err != nil || len(b) != 32 || strings.ToLower(f.SHA256) != f.SHA256 {
			return nil, fmt.Errorf("line %d: %q is not a SHA-256 in lower-case hex", ln, clip(f.SHA256))
		}
		if f.Size, err = strconv.ParseInt(parts[1], 10, 64); err != nil || f.Size < 0 || strconv.FormatInt(f.Size, 10) != parts[1] {
			return nil, fmt.Errorf("line %d: size %q is not a number of bytes", ln, clip(parts[1]))
		}
		if err := CheckPath(f.Path); err != nil {
			return nil, fmt.Errorf("line %d: %w", ln, err)
		}
		if seen[f.Path] {
			return nil, fmt.Errorf("line %d: %s listed twice", ln, f.Path)
		}
		if i > 0 && m.Files[i-1].Path > f.Path {
			return nil, fmt.Errorf("line %d: %s is out of order", ln, f.Path)
		}
		seen[f.Path] = true
		m.Files = append(m.Files, f)
	}
	return m, nil
}

// CheckPath refuses paths that could escape the bundle or shadow the
// unsigned write-back areas.
func CheckPath(p string) error {
	if p == "" || path.Clean(p) != p || path.IsAbs(p) || p == "." || strings.HasPrefix(p, "../") || p == ".." {
		return fmt.Errorf("path %q is not a clean relative path", clip(p))
	}
	for _, c := range p {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("._+-/", c)) {
			return fmt.Errorf("path %q: only letters, digits and ._+-/ are allowed", clip(p))
		}
	}
	top, _, _ := strings.Cut(p, "/")
	switch top {
	case FeedDir, "ca", CertsDir, FirmwareDir:
	default:
		return fmt.Errorf("path %q is outside feed/, ca/, certs/ and firmware/", clip(p))
	}
	for _, seg := range strings.Split(p, "/") {
		if strings.HasPrefix(seg, ".") {
			return fmt.Errorf("path %q: hidden names are not allowed", clip(p))
		}
	}
	return nil
}

func clip(s string) string {
	if len(s) > 60 {
		return s[:60] + "..."
	}
	return s
}
