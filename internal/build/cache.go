package build

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/meshnode/meshnode/feeds/ipk"
	"github.com/meshnode/meshnode/internal/atomicfile"
)

// packCache keeps packed ipks by a hash of everything that goes into them,
// as Go's build cache keeps compiled packages: with a warm Go cache the
// binaries are unchanged, and recompressing megabytes of identical input
// would be most of the time `make` takes.
//
// The key covers the control data, every file's path, mode and content,
// the scripts, the options, and the meshkit executable itself, so a change
// to the ipk writer can never serve a stale archive.
type packCache struct {
	dir      string // "" disables the cache
	self     string // hash of the running executable
	mu       sync.Mutex
	used     map[string]bool
	hits, ms int
}

// cacheVersion changes when the key's layout changes.
const cacheVersion = "meshnode-ipk-cache-1"

// cacheMaxAge: entries unused this long are removed after a build.
const cacheMaxAge = 14 * 24 * time.Hour

func newPackCache(dir string) (*packCache, error) {
	c := &packCache{dir: dir, used: map[string]bool{}}
	if dir == "" {
		return c, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	f, err := os.Open(exe)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return nil, err
	}
	c.self = hex.EncodeToString(h.Sum(nil))
	return c, nil
}

func (c *packCache) key(p *ipk.Package, opt ipk.Options) string {
	if c.dir == "" {
		return ""
	}
	h := sha256.New()
	field := func(h hash.Hash, s string) { fmt.Fprintf(h, "%d:%s;", len(s), s) }
	field(h, cacheVersion)
	field(h, c.self)
	field(h, fmt.Sprintf("%#v", p.Control))
	field(h, fmt.Sprintf("%d/%d", opt.Format, opt.ModTime.Unix()))
	files := append([]ipk.File{}, p.Files...)
	sort.Slice(files, func(i, j int) bool { return files[i].Path < files[j].Path })
	for _, f := range files {
		sum := sha256.Sum256(f.Data)
		field(h, fmt.Sprintf("%s %o %s %x", f.Path, uint32(f.Mode), f.Link, sum))
	}
	for _, cf := range p.Conffiles {
		field(h, cf)
	}
	for _, s := range [][]byte{p.Postinst, p.Prerm, p.Preinst, p.Postrm} {
		field(h, string(s))
	}
	return hex.EncodeToString(h.Sum(nil))
}

// get returns the cached ipk, or nil on a miss or any read problem (the
// build then simply packs again; verification checks the result either way).
func (c *packCache) get(key string) []byte {
	if key == "" {
		return nil
	}
	data, err := os.ReadFile(filepath.Join(c.dir, key+".ipk"))
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil || len(data) == 0 {
		c.ms++
		return nil
	}
	c.hits++
	c.used[key] = true
	return data
}

func (c *packCache) put(key string, data []byte) {
	if key == "" {
		return
	}
	// Best effort: a full disk must not fail the build.
	if atomicfile.WriteFile(filepath.Join(c.dir, key+".ipk"), data, 0o644) == nil {
		c.mu.Lock()
		c.used[key] = true
		c.mu.Unlock()
	}
}

func (c *packCache) stats() (hits, misses int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dir == "" {
		return 0, c.ms
	}
	return c.hits, c.ms
}

// prune marks this build's entries as fresh and removes old ones.
func (c *packCache) prune() {
	if c.dir == "" {
		return
	}
	now := time.Now()
	ents, err := os.ReadDir(c.dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		p := filepath.Join(c.dir, e.Name())
		key := e.Name()
		if filepath.Ext(key) == ".ipk" {
			key = key[:len(key)-len(".ipk")]
		}
		if c.used[key] {
			os.Chtimes(p, now, now)
			continue
		}
		if info, err := e.Info(); err == nil && now.Sub(info.ModTime()) > cacheMaxAge {
			os.Remove(p)
		}
	}
}

func cacheName(dir string) string {
	if dir == "" {
		return "no cache"
	}
	return dir
}
