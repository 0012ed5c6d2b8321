package build

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/meshnode/meshnode/feeds/index"
	"github.com/meshnode/meshnode/feeds/ipk"
	"github.com/meshnode/meshnode/feeds/pgp"
	"github.com/meshnode/meshnode/feeds/usign"
	"github.com/meshnode/meshnode/feeds/verify"
	"github.com/meshnode/meshnode/internal/manifest"
)

// VersionVar is the linker symbol every binary's version is stamped into.
const VersionVar = "github.com/meshnode/meshnode/internal/version.Version"

// Config is one `meshkit build` run.
type Config struct {
	Root     string     // repository root
	BinDir   string     // out/bin: raw binaries per arch
	FeedDir  string     // out/feed: one feed per arch, plus keys/
	Targets  []Target   // architectures to build
	Format   ipk.Format // OpenWrt 24.10 (default) or 23.05
	Epoch    time.Time  // SOURCE_DATE_EPOCH: every mtime and signature time
	FeedName string     // name in customfeeds.conf
	FeedURL  string     // base URL; the feed of arch A is FeedURL/A
	Keys     *Keys      // signing keys
	Log      io.Writer  // progress, one line per step
	GoCmd    string     // "go" unless set
	Jobs     int        // parallel compiles; 0 = number of CPUs
	Env      []string   // base environment for go build; nil = os.Environ()
	CacheDir string     // packed ipks by input hash; "" = no cache
}

// Result describes what a build wrote.
type Result struct {
	Feeds    map[string]string            // arch -> feed directory
	Binaries map[string]map[string]string // arch -> cmd -> binary path
	Packages map[string][]PackageFile     // arch -> ipks in that feed
}

// PackageFile is one ipk in a feed.
type PackageFile struct {
	Name    string // package name
	File    string // path
	Size    int64
	RawSize int64 // sum of the binaries it carries (0 for none)
}

// Build compiles, packs, indexes, signs and verifies, in a temporary
// directory beside the output, and moves each finished feed into place only
// when all of them succeeded. A failed build leaves out/ as it was.
func Build(ctx context.Context, cfg Config) (*Result, error) {
	cfg.setDefaults()
	if cfg.Keys == nil || cfg.Keys.Usign == nil || cfg.Keys.PGP == nil {
		return nil, errors.New("build: no signing keys")
	}
	if len(cfg.Targets) == 0 {
		return nil, errors.New("build: no target architectures")
	}
	manifests, err := manifest.LoadAll(cfg.Root)
	if err != nil {
		return nil, err
	}
	for _, d := range []string{cfg.BinDir, cfg.FeedDir} {
		if err := os.MkdirAll(filepath.Dir(d), 0o755); err != nil {
			return nil, err
		}
	}
	// The staging directory sits next to the output so the final renames
	// stay on one file system.
	stage, err := os.MkdirTemp(filepath.Dir(cfg.FeedDir), ".meshkit-build-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(stage)

	cfg.Log = &syncWriter{w: cfg.Log}
	res := &Result{Feeds: map[string]string{}, Binaries: map[string]map[string]string{}, Packages: map[string][]PackageFile{}}
	stageFeed := filepath.Join(stage, "feed")
	if err := writeKeys(cfg, filepath.Join(stageFeed, "keys")); err != nil {
		return nil, err
	}
	trust, err := stagedTrust(cfg)
	if err != nil {
		return nil, err
	}
	cache, err := newPackCache(cfg.CacheDir)
	if err != nil {
		return nil, err
	}
	// "all" packages are packed once and shared by every feed.
	shared := map[string][]byte{}
	for _, m := range manifests {
		if m.Arch == manifest.ArchAll {
			if shared[m.Name], err = packOne(cfg, m, "all", nil, cache); err != nil {
				return nil, err
			}
		}
	}
	// One job per architecture: compile, pack, index, sign, then check
	// what we are about to publish with the same code operators run. One
	// target packs while the next compiles.
	feeds := make([]feedJob, len(cfg.Targets))
	bins := make(map[string]map[string]string, len(cfg.Targets))
	var binsMu sync.Mutex
	err = forEach(ctx, cfg.Jobs, len(cfg.Targets), func(i int) error {
		t := cfg.Targets[i]
		j := &feeds[i]
		tb, err := compileTarget(ctx, cfg, t, manifests, filepath.Join(stage, "bin"))
		if err != nil {
			return err
		}
		binsMu.Lock()
		bins[t.Arch] = tb
		binsMu.Unlock()
		j.start = time.Now()
		dir := filepath.Join(stageFeed, t.Arch)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		var entries []index.Entry
		for _, m := range manifests {
			arch, data := t.Arch, shared[m.Name]
			if m.Arch == manifest.ArchAll {
				arch = "all"
			} else if data, err = packOne(cfg, m, t.Arch, tb, cache); err != nil {
				return err
			}
			name := ipk.FileName(controlFor(cfg, m, arch), cfg.Format)
			entries = append(entries, index.Entry{FileName: name, Data: data})
			var raw int64
			for _, b := range m.Binaries {
				if st, err := os.Stat(tb[b.Key()]); err == nil {
					raw += st.Size()
				}
			}
			j.pkgs = append(j.pkgs, PackageFile{Name: m.Name, File: filepath.Join(cfg.FeedDir, t.Arch, name),
				Size: int64(len(data)), RawSize: raw})
		}
		j.packed = time.Now()
		if err := WriteFeed(cfg, dir, t.Arch, entries); err != nil {
			return err
		}
		j.signed = time.Now()
		rep, err := verify.Feed(dir, trust)
		if err != nil {
			return err
		}
		if len(rep.Problems) > 0 {
			var msgs []string
			for _, p := range rep.Problems {
				msgs = append(msgs, p.File+": "+p.Msg)
			}
			return fmt.Errorf("built feed %s fails verification:\n  %s", t.Arch, strings.Join(msgs, "\n  "))
		}
		j.verified = time.Now()
		return nil
	})
	if err != nil {
		return nil, err
	}
	for i, t := range cfg.Targets {
		j := feeds[i]
		res.Packages[t.Arch] = j.pkgs
		fmt.Fprintf(cfg.Log, "feed   %-26s %d packages: pack %.2fs, index+sign %.2fs, verify %.2fs\n", t.Arch, len(j.pkgs),
			j.packed.Sub(j.start).Seconds(), j.signed.Sub(j.packed).Seconds(), j.verified.Sub(j.signed).Seconds())
	}
	hits, misses := cache.stats()
	fmt.Fprintf(cfg.Log, "sign   usign %s, OpenPGP %s (%s); %d ipks packed, %d reused from %s\n",
		cfg.Keys.Usign.Fingerprint(), cfg.Keys.PGP.Fingerprint(), cfg.Keys.Source, misses, hits, cacheName(cfg.CacheDir))

	// Publish: replace each directory whole.
	for _, t := range cfg.Targets {
		if err := replaceDir(filepath.Join(stageFeed, t.Arch), filepath.Join(cfg.FeedDir, t.Arch)); err != nil {
			return nil, err
		}
		if err := replaceDir(filepath.Join(stage, "bin", t.Arch), filepath.Join(cfg.BinDir, t.Arch)); err != nil {
			return nil, err
		}
		res.Feeds[t.Arch] = filepath.Join(cfg.FeedDir, t.Arch)
		res.Binaries[t.Arch] = map[string]string{}
		for cmd := range bins[t.Arch] {
			res.Binaries[t.Arch][cmd] = filepath.Join(cfg.BinDir, t.Arch, cmd)
		}
	}
	if err := replaceDir(filepath.Join(stageFeed, "keys"), filepath.Join(cfg.FeedDir, "keys")); err != nil {
		return nil, err
	}
	cache.prune()
	return res, nil
}

// syncWriter serialises log lines from concurrent jobs.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

type feedJob struct {
	pkgs                            []PackageFile
	start, packed, signed, verified time.Time
}

// forEach runs fn(0..n-1) on at most jobs goroutines and returns the first
// error; the others are cancelled through ctx where they check it.
func forEach(ctx context.Context, jobs, n int, fn func(i int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sem := make(chan struct{}, max(jobs, 1))
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			defer func() { <-sem }()
			if ctx.Err() != nil {
				return
			}
			if err := fn(i); err != nil {
				mu.Lock()
				if first == nil {
					first = err
					cancel()
				}
				mu.Unlock()
			}
		}(i)
	}
	wg.Wait()
	if first != nil {
		return first
	}
	return ctx.Err()
}

func (cfg *Config) setDefaults() {
	if cfg.GoCmd == "" {
		cfg.GoCmd = "go"
	}
	if cfg.Log == nil {
		cfg.Log = io.Discard
	}
	if cfg.Jobs <= 0 {
		cfg.Jobs = runtime.NumCPU()
	}
	if cfg.Env == nil {
		cfg.Env = os.Environ()
	}
}

// Compile builds every command any native package needs, for every
// target, one target per job: the reference `make bench` compares with.
func Compile(ctx context.Context, cfg Config, ms []*manifest.Manifest, binDir string) (map[string]map[string]string, error) {
	cfg.setDefaults()
	out := make([]map[string]string, len(cfg.Targets))
	err := forEach(ctx, cfg.Jobs, len(cfg.Targets), func(i int) error {
		var err error
		out[i], err = compileTarget(ctx, cfg, cfg.Targets[i], ms, binDir)
		return err
	})
	if err != nil {
		return nil, err
	}
	res := map[string]map[string]string{}
	for i, t := range cfg.Targets {
		res[t.Arch] = out[i]
	}
	return res, nil
}

// compileTarget builds the commands of every native package for one target
// into binDir/<arch>/<key>, stamped with their package's version. The key is
// the command name, with the build tags appended when there are any
// (manifest.Binary.Key), so one command built with different tags gives
// different binaries.
func compileTarget(ctx context.Context, cfg Config, t Target, ms []*manifest.Manifest, binDir string) (map[string]string, error) {
	out := map[string]string{}
	for _, m := range ms {
		for _, b := range m.Binaries {
			key := b.Key()
			if _, dup := out[key]; dup {
				continue
			}
			p := filepath.Join(binDir, t.Arch, key)
			v := m.FullVersion(cfg.Format == ipk.OpenWrt2305)
			start := time.Now()
			if err := GoBuildTags(ctx, cfg.GoCmd, cfg.Root, cfg.Env, t, "./cmd/"+b.Cmd, p, v, b.Tags); err != nil {
				return nil, err
			}
			out[key] = p
			fmt.Fprintf(cfg.Log, "go     %-26s %-12s %s (%.1fs)\n", t.Arch, key, v, time.Since(start).Seconds())
		}
	}
	return out, nil
}

// GoBuild cross-compiles one command the way every router binary must be
// built: static (CGO off), -trimpath, stripped, version stamped.
func GoBuild(ctx context.Context, goCmd, root string, env []string, t Target, pkg, out, version string) error {
	return GoBuildTags(ctx, goCmd, root, env, t, pkg, out, version, nil)
}

// GoArgs is the `go` command line GoBuildTags runs (without the program
// name): tests and `meshkit image --dry-run` show it.
func GoArgs(pkg, out, version string, tags []string) []string {
	args := []string{"build", "-trimpath", "-buildvcs=false"}
	if len(tags) > 0 {
		args = append(args, "-tags", strings.Join(tags, ","))
	}
	return append(args, "-ldflags", "-s -w -buildid= -X "+VersionVar+"="+version, "-o", out, pkg)
}

// GoBuildTags is GoBuild with Go build tags (a manifest's `option tags`).
func GoBuildTags(ctx context.Context, goCmd, root string, env []string, t Target, pkg, out, version string, tags []string) error {
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	args := GoArgs(pkg, out, version, tags)
	cmd := exec.CommandContext(ctx, goCmd, args...)
	cmd.Dir = root
	cmd.Env = append(append(append([]string{}, env...), "CGO_ENABLED=0", "GOOS=linux", "GOFLAGS=-mod=readonly"), t.GoEnv...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.Stdout = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build %s for %s: %v\n%s", pkg, t.Arch, err, strings.TrimSpace(stderr.String()))
	}
	return nil
}

func controlFor(cfg Config, m *manifest.Manifest, arch string) ipk.Control {
	return ipk.Control{
		Package:      m.Name,
		Version:      m.Version,
		Release:      m.Release,
		Depends:      m.Depends,
		Conflicts:    m.Conflicts,
		Provides:     m.Provides,
		Source:       "feeds/" + cfg.FeedName + "/" + m.Name,
		SourceName:   m.Name,
		License:      m.License,
		LicenseFiles: m.LicenseFiles,
		Section:      m.Section,
		URL:          m.URL,
		Maintainer:   m.Maintainer,
		Architecture: arch,
		Description:  m.Description,
	}
}

// packOne builds one ipk for one architecture.
func packOne(cfg Config, m *manifest.Manifest, arch string, bins map[string]string, cache *packCache) ([]byte, error) {
	subst := substitutions(cfg, m)
	readSrc := func(src string, template bool) ([]byte, error) {
		b, err := os.ReadFile(filepath.Join(m.Dir, "files", filepath.FromSlash(src)))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", m.File, err)
		}
		if template {
			b = []byte(subst.Replace(string(b)))
		}
		return b, nil
	}
	p := &ipk.Package{Control: controlFor(cfg, m, arch), Conffiles: m.Conffiles}
	for _, b := range m.Binaries {
		data, err := os.ReadFile(bins[b.Key()])
		if err != nil {
			return nil, err
		}
		p.Files = append(p.Files, ipk.File{Path: b.Dest, Mode: 0o755, Data: data})
	}
	for _, in := range m.Installs {
		data, err := readSrc(in.Src, in.Template)
		if err != nil {
			return nil, err
		}
		p.Files = append(p.Files, ipk.File{Path: in.Dest, Mode: in.Mode, Data: data})
	}
	if m.Init != "" {
		data, err := readSrc(m.Init, false)
		if err != nil {
			return nil, err
		}
		p.Files = append(p.Files, ipk.File{Path: "/etc/init.d/" + m.Name, Mode: 0o755, Data: data})
	}
	for _, u := range m.UCIDefaults {
		data, err := readSrc(u, false)
		if err != nil {
			return nil, err
		}
		p.Files = append(p.Files, ipk.File{Path: "/etc/uci-defaults/" + path.Base(u), Mode: 0o755, Data: data})
	}
	if len(m.Keep) > 0 {
		// What ipkg-build does with conffiles the package does not ship.
		p.Files = append(p.Files, ipk.File{Path: "/lib/upgrade/keep.d/" + m.Name, Mode: 0o644,
			Data: []byte(strings.Join(m.Keep, "\n") + "\n")})
	}
	for _, dir := range m.UsignKeyDirs {
		pub := cfg.Keys.Usign.Public()
		p.Files = append(p.Files, ipk.File{Path: dir + "/" + pub.Fingerprint(), Mode: 0o644, Data: pub.Marshal()})
	}
	var err error
	for _, sc := range []struct {
		src string
		dst *[]byte
	}{
		{m.Scripts.Postinst, &p.Postinst}, {m.Scripts.Prerm, &p.Prerm},
		{m.Scripts.Preinst, &p.Preinst}, {m.Scripts.Postrm, &p.Postrm},
	} {
		if sc.src == "" {
			continue
		}
		if *sc.dst, err = readSrc(sc.src, true); err != nil {
			return nil, err
		}
	}
	opt := ipk.Options{Format: cfg.Format, ModTime: cfg.Epoch}
	key := cache.key(p, opt)
	if data := cache.get(key); data != nil {
		return data, nil
	}
	var buf bytes.Buffer
	if _, err := ipk.Write(&buf, p, opt); err != nil {
		return nil, fmt.Errorf("%s: %w", m.File, err)
	}
	cache.put(key, buf.Bytes())
	return buf.Bytes(), nil
}

// substitutions fill the @NAME@ placeholders in scripts and template files.
func substitutions(cfg Config, m *manifest.Manifest) *strings.Replacer {
	return strings.NewReplacer(
		"@FEED_NAME@", cfg.FeedName,
		"@FEED_URL@", strings.TrimRight(cfg.FeedURL, "/"),
		"@USIGN_FINGERPRINT@", cfg.Keys.Usign.Fingerprint(),
		"@PKG_VERSION@", m.FullVersion(cfg.Format == ipk.OpenWrt2305),
	)
}

// WriteFeed writes the ipks, the index, Packages.sig, SHA256SUMS and its
// OpenPGP signature into dir.
func WriteFeed(cfg Config, dir, arch string, entries []index.Entry) error {
	feed, err := index.Build(arch, entries)
	if err != nil {
		return fmt.Errorf("index %s: %w", arch, err)
	}
	files := map[string][]byte{
		"Packages":          feed.Packages,
		"Packages.gz":       feed.PackagesGz,
		"Packages.manifest": feed.Manifest,
		"index.json":        feed.IndexJSON,
		"Packages.sig":      usign.Sign(cfg.Keys.Usign, feed.Packages).Marshal(),
	}
	for _, e := range entries {
		files[e.FileName] = e.Data
	}
	sums := pgp.SHA256Sums(files)
	sig, err := cfg.Keys.PGP.Sign(sums, cfg.Epoch)
	if err != nil {
		return fmt.Errorf("sign SHA256SUMS for %s: %w", arch, err)
	}
	files["SHA256SUMS"] = sums
	files["SHA256SUMS.asc"] = sig
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		p := filepath.Join(dir, n)
		if err := os.WriteFile(p, files[n], 0o644); err != nil {
			return err
		}
		if err := os.Chtimes(p, cfg.Epoch, cfg.Epoch); err != nil {
			return err
		}
	}
	return nil
}

// Published public key names under <feed>/keys.
const PGPPublicName = "meshnode-feed.asc"

// writeKeys publishes the public halves next to the feeds, so routers and
// operators can fetch them (and compare fingerprints in person).
func writeKeys(cfg Config, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	pub := cfg.Keys.Usign.Public()
	if err := os.WriteFile(filepath.Join(dir, pub.Fingerprint()), pub.Marshal(), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, PGPPublicName), cfg.Keys.PGP.PublicKey(), 0o644)
}

func stagedTrust(cfg Config) (verify.Keys, error) {
	pub := cfg.Keys.Usign.Public()
	ring, err := pgp.LoadKeyRing(cfg.Keys.PGP.PublicKey())
	if err != nil {
		return verify.Keys{}, err
	}
	return verify.Keys{Usign: map[string]*usign.PublicKey{pub.Fingerprint(): pub}, PGP: ring}, nil
}

// replaceDir moves src to dst, replacing dst whole. Between the two renames
// dst is briefly absent, never half-written.
func replaceDir(src, dst string) error {
	old := dst + ".old"
	if err := os.RemoveAll(old); err != nil {
		return err
	}
	if err := os.Rename(dst, old); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	if err := os.Rename(src, dst); err != nil {
		return err
	}
	return os.RemoveAll(old)
}
