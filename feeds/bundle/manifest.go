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
	"errors"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/meshnode/meshnode/ca/exchange"
	"github.com/meshnode/meshnode/internal/errfmt"
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
	b.WriteString(manifestMagic + "\nversion " + strconv.FormatUint(m.Version, 10) + "\ncreated " + m.Created.UTC().Format(time.RFC3339) + "\n")
	for i := range fs {
		f := &fs[i]
		b.WriteString("file " + f.SHA256 + " " + strconv.FormatInt(f.Size, 10) + " " + f.Path + "\n")
	}
	return b.Bytes()
}

// Lookup returns the entry for p.
func (m *Manifest) Lookup(p string) (File, bool) {
	for i := range m.Files {
		if m.Files[i].Path == p {
			return m.Files[i], true
		}
	}
	return File{}, false
}

// ParseManifest reads a manifest written by Marshal, strictly: any line it
// does not understand is an error naming the line.
func ParseManifest(data []byte) (*Manifest, error) {
	if len(data) == 0 || data[len(data)-1] != '\n' {
		return nil, errors.New("empty or cut short (last line incomplete)")
	}
	lines := strings.Split(string(data[:len(data)-1]), "\n")
	if len(lines) < 3 || lines[0] != manifestMagic {
		return nil, errfmt.Errorf("line 1: want %q", manifestMagic)
	}
	m := &Manifest{}
	v, ok := strings.CutPrefix(lines[1], "version ")
	n, err := strconv.ParseUint(v, 10, 64)
	if !ok || err != nil || n == 0 || strconv.FormatUint(n, 10) != v {
		return nil, errors.New("line 2: want 'version N' with N > 0")
	}
	m.Version = n
	c, ok := strings.CutPrefix(lines[2], "created ")
	t, err := time.Parse(time.RFC3339, c)
	if !ok || err != nil || t.UTC().Format(time.RFC3339) != c {
		return nil, errors.New("line 3: want 'created' and an RFC 3339 UTC time")
	}
	m.Created = t
	seen := map[string]bool{}
	for i, l := range lines[3:] {
		ln := i + 4
		rest, ok := strings.CutPrefix(l, "file ")
		parts := strings.SplitN(rest, " ", 3)
		if !ok || len(parts) != 3 {
			return nil, errfmt.Errorf("line %d: want 'file SHA256 SIZE PATH'", ln)
		}
		f := File{SHA256: parts[0], Path: parts[2]}
		f.Size, err = strconv.ParseInt(parts[1], 10, 64)
		// The line's error, if msg is set: one exit, as each error
		// built in place costs flash on MIPS.
		msg := ""
		switch {
		case !exchange.IsHex64(f.SHA256):
			msg = quoteClip(f.SHA256) + " is not a SHA-256 in lower-case hex"
		case err != nil || f.Size < 0 || strconv.FormatInt(f.Size, 10) != parts[1]:
			msg = "size " + quoteClip(parts[1]) + " is not a number of bytes"
		default:
			if err := CheckPath(f.Path); err != nil {
				return nil, errfmt.Errorf("line %d: %w", ln, err)
			}
			if seen[f.Path] {
				msg = f.Path + " listed twice"
			} else if i > 0 && m.Files[i-1].Path > f.Path {
				msg = f.Path + " is out of order"
			}
		}
		if msg != "" {
			return nil, errfmt.Errorf("line %d: %s", ln, msg)
		}
		seen[f.Path] = true
		m.Files = append(m.Files, f)
	}
	return m, nil
}

// CheckPath refuses paths that could escape the bundle or shadow the
// unsigned write-back areas.
func CheckPath(p string) error {
	badChar := false
	for i := 0; i < len(p); i++ {
		c := p[i]
		// Bytes of non-ASCII runes are refused here too.
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("._+-/", c) >= 0) {
			badChar = true
		}
	}
	top, _, _ := strings.Cut(p, "/")
	msg := ""
	switch {
	case p == "" || path.Clean(p) != p || path.IsAbs(p) || p == "." || strings.HasPrefix(p, "../") || p == "..":
		msg = " is not a clean relative path"
	case badChar:
		msg = ": only letters, digits and ._+-/ are allowed"
	case top != FeedDir && top != "ca" && top != CertsDir && top != FirmwareDir:
		msg = " is outside feed/, ca/, certs/ and firmware/"
	case strings.HasPrefix(p, ".") || strings.Contains(p, "/."):
		msg = ": hidden names are not allowed"
	default:
		return nil
	}
	return errfmt.Errorf("path %q%s", clip(p), msg)
}

func clip(s string) string {
	if len(s) > 60 {
		return s[:60] + "..."
	}
	return s
}

// quoteClip is %q of clip(s). Not inlined: strconv.Quote inlined is
// about 250 bytes of MIPS code at each call.
//
//go:noinline
func quoteClip(s string) string { return strconv.Quote(clip(s)) }
