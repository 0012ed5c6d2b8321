package profiles

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/meshnode/meshnode/internal/uci"
)

// Size is one package's measured size on one architecture.
type Size struct {
	Package, Arch string
	Raw           int64 // installed bytes
	XZ            int64 // xz -9e of the payload as one stream (the figure facts-performance quotes)
	Squashfs      int64 // xz -9e per 256 KiB block of each file: what the image stores
	Source        string
	Line          int
}

// Sizes are the measured package sizes, from profiles/sizes.
type Sizes struct {
	File  string
	byKey map[string]Size
}

func sizeKey(pkg, arch string) string { return pkg + " " + arch }

// Get returns a package's size on an architecture.
func (s *Sizes) Get(pkg, arch string) (Size, bool) {
	v, ok := s.byKey[sizeKey(pkg, arch)]
	return v, ok
}

// Set records a size.
func (s *Sizes) Set(v Size) {
	if s.byKey == nil {
		s.byKey = map[string]Size{}
	}
	s.byKey[sizeKey(v.Package, v.Arch)] = v
}

// All lists the sizes sorted by package and architecture.
func (s *Sizes) All() []Size {
	var out []Size
	for _, v := range s.byKey {
		out = append(out, v)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Package != out[j].Package {
			return out[i].Package < out[j].Package
		}
		return out[i].Arch < out[j].Arch
	})
	return out
}

// ReadSizes reads profiles/sizes: 'config size' sections with package,
// arch, raw, xz, squashfs (bytes) and source.
func ReadSizes(file string) (*Sizes, error) {
	f, err := uci.ReadFile(file)
	if err != nil {
		return nil, err
	}
	s := &Sizes{File: file, byKey: map[string]Size{}}
	for _, sec := range f.Sections {
		if sec.Type != "size" {
			return nil, &FieldError{File: file, Line: sec.Line, Msg: fmt.Sprintf("unknown section type %q (want size)", sec.Type)}
		}
		r := &reader{file: file, sec: sec}
		v := Size{Line: sec.Line, Package: r.str("package", nil), Arch: r.str("arch", archRe), Source: r.str("source", nil)}
		for _, n := range []struct {
			name string
			dst  *int64
		}{{"raw", &v.Raw}, {"xz", &v.XZ}, {"squashfs", &v.Squashfs}} {
			str := r.str(n.name, nil)
			if r.err != nil {
				break
			}
			x, err := strconv.ParseInt(str, 10, 64)
			if err != nil || x < 0 {
				r.fail(n.name, fmt.Sprintf("%q is not a number of bytes", str))
			}
			*n.dst = x
		}
		if r.err != nil {
			return nil, r.err
		}
		if _, dup := s.byKey[sizeKey(v.Package, v.Arch)]; dup {
			return nil, &FieldError{File: file, Line: sec.Line, Msg: fmt.Sprintf("%s on %s is measured twice", v.Package, v.Arch)}
		}
		s.byKey[sizeKey(v.Package, v.Arch)] = v
	}
	return s, nil
}

// Marshal writes the sizes as profiles/sizes.
func (s *Sizes) Marshal() []byte {
	var b bytes.Buffer
	b.WriteString("# Sizes of our packages as the image stores them, per architecture (bytes).\n" +
		"# raw: installed files; xz: xz -9e of them as one stream; squashfs: xz -9e of\n" +
		"# every 256 KiB block of every file, as mksquashfs -comp xz -b 256K stores\n" +
		"# them (what the flash budget counts). Rewritten by `meshkit profiles --measure`.\n")
	for _, v := range s.All() {
		fmt.Fprintf(&b, "\nconfig size\n\toption package '%s'\n\toption arch '%s'\n\toption raw '%d'\n\toption xz '%d'\n\toption squashfs '%d'\n\toption source '%s'\n",
			v.Package, v.Arch, v.Raw, v.XZ, v.Squashfs, v.Source)
	}
	return b.Bytes()
}

// Budget is one device and role weighed against each other.
type Budget struct {
	Device   *Device
	Role     *Role
	Packages []string // ours, as installed
	Lite     bool     // the role's lite package set
	Ours     int64    // squashfs size of our packages
	Extra    int64    // OpenWrt packages the role adds
	Free     int64    // device free space
	Left     int64    // Free - Ours - Extra
	Headroom int64
	Problem  string // why the combination is refused; "" = fits
}

// OK reports whether the combination fits with the headroom.
func (b *Budget) OK() bool { return b.Problem == "" }

// Err is the refusal as an error, or nil.
func (b *Budget) Err() error {
	if b.OK() {
		return nil
	}
	return fmt.Errorf("%s as %s: %s", b.Device.ID, b.Role.ID, b.Problem)
}

// PackagesFor is the list of our packages a role installs on a device.
func (s *Set) PackagesFor(d *Device, r *Role) ([]string, error) {
	if !d.Lite {
		return r.Packages, nil
	}
	if len(r.LitePackages) == 0 {
		return nil, fmt.Errorf("role %s needs the full agent (Nebula), which does not fit %s (agent 'lite'); roles for it: %s",
			r.ID, d.ID, strings.Join(s.liteRoles(), ", "))
	}
	return r.LitePackages, nil
}

func (s *Set) liteRoles() []string {
	var out []string
	for _, r := range s.Roles {
		if len(r.LitePackages) > 0 {
			out = append(out, r.ID)
		}
	}
	return out
}

// Budget weighs a role's packages against a device's free space. headroom
// <= 0 means DefaultHeadroom.
func (s *Set) Budget(d *Device, r *Role, headroom int64) *Budget {
	if headroom <= 0 {
		headroom = DefaultHeadroom
	}
	b := &Budget{Device: d, Role: r, Lite: d.Lite, Free: d.Free(), Headroom: headroom, Extra: r.ExtraSize}
	if len(d.Radios) > 0 {
		b.Extra += r.WifiExtraSize
	} else if r.Backbone != "none" && r.ID != "hub" {
		// A node without a radio cannot carry a wireless backbone; the hub
		// joins the backbone over Ethernet.
		b.Problem = fmt.Sprintf("role %s needs a radio for its %s backbone and %s has none", r.ID, r.Backbone, d.ID)
	}
	pkgs, err := s.PackagesFor(d, r)
	if err != nil {
		b.Problem = err.Error()
		return b
	}
	b.Packages = pkgs
	for _, p := range pkgs {
		sz, ok := s.Sizes.Get(p, d.Arch)
		if !ok {
			if m := s.Packages[p]; m != nil && m.Arch == "all" {
				sz, ok = s.Sizes.Get(p, "all")
			}
		}
		if !ok {
			b.Problem = fmt.Sprintf("no measured size for %s on %s in %s: run `meshkit profiles --measure`", p, d.Arch, s.Sizes.File)
			return b
		}
		b.Ours += sz.Squashfs
	}
	b.Left = b.Free - b.Ours - b.Extra
	if b.Problem == "" && b.Left < headroom {
		b.Problem = fmt.Sprintf("needs %s (ours %s + OpenWrt extras %s) of %s free, leaving %s: less than the %s headroom",
			FormatSize(b.Ours+b.Extra), FormatSize(b.Ours), FormatSize(b.Extra), FormatSize(b.Free), FormatSize(b.Left), FormatSize(headroom))
	}
	return b
}

// Budgets weighs every device against every role, devices first.
func (s *Set) Budgets(headroom int64) []*Budget {
	var out []*Budget
	for _, d := range s.Devices {
		for _, r := range s.Roles {
			out = append(out, s.Budget(d, r, headroom))
		}
	}
	return out
}

// WriteTable prints the budget table.
func WriteTable(w io.Writer, bs []*Budget) {
	fmt.Fprintf(w, "%-20s %-10s %-19s %5s %7s %6s %7s %7s  %s\n", "DEVICE", "ROLE", "ARCH", "AGENT", "FREE", "OURS", "EXTRA", "LEFT", "RESULT")
	for _, b := range bs {
		agent := "full"
		if b.Lite {
			agent = "lite"
		}
		res := "ok"
		if !b.OK() {
			res = "REFUSED: " + b.Problem
		}
		fmt.Fprintf(w, "%-20s %-10s %-19s %5s %7s %6s %7s %7s  %s\n", b.Device.ID, b.Role.ID, b.Device.Arch, agent,
			FormatSize(b.Free), FormatSize(b.Ours), FormatSize(b.Extra), FormatSize(b.Left), res)
	}
}

// BlockSize is the squashfs block size OpenWrt images use (-b 256K).
const BlockSize = 256 * KiB

// Compressor compresses one block or stream and returns the compressed size.
type Compressor func(ctx context.Context, data []byte) (int64, error)

// XZ is `xz -9e --check=none`, squashfs' compressor settings at the
// strongest preset.
func XZ(ctx context.Context, data []byte) (int64, error) {
	cmd := exec.CommandContext(ctx, "xz", "-9e", "--check=none", "-c")
	cmd.Stdin = bytes.NewReader(data)
	var out bytes.Buffer
	cmd.Stdout = &out
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return 0, fmt.Errorf("xz: %v %s", err, strings.TrimSpace(stderr.String()))
	}
	return int64(out.Len()), nil
}

// Measure sizes a set of installed files: raw, xz of all of them as one
// stream, and the sum over every 256 KiB block of every file compressed
// alone (a small last block is compressed alone too; squashfs would pack
// it into a shared fragment, so this slightly overstates).
func Measure(ctx context.Context, files [][]byte, c Compressor) (raw, whole, squash int64, err error) {
	var all bytes.Buffer
	type job struct{ data []byte }
	var jobs []job
	for _, f := range files {
		raw += int64(len(f))
		all.Write(f)
		for off := 0; off < len(f); off += BlockSize {
			jobs = append(jobs, job{f[off:min(off+BlockSize, len(f))]})
		}
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for _, j := range jobs {
		wg.Add(1)
		go func(j job) {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			n, e := c(ctx, j.data)
			mu.Lock()
			defer mu.Unlock()
			if e != nil && err == nil {
				err = e
			}
			squash += n
		}(j)
	}
	wg.Wait()
	if err != nil {
		return 0, 0, 0, err
	}
	if whole, err = c(ctx, all.Bytes()); err != nil {
		return 0, 0, 0, err
	}
	return raw, whole, squash, nil
}

// PackageFiles reads what a package installs on an architecture: its
// binaries from binDir/<arch>/<key> and its files/ (templates unexpanded:
// a few bytes off).
func (s *Set) PackageFiles(name, binDir, arch string) ([][]byte, error) {
	m, ok := s.Packages[name]
	if !ok {
		return nil, fmt.Errorf("unknown package %q", name)
	}
	var out [][]byte
	for _, b := range m.Binaries {
		data, err := os.ReadFile(filepath.Join(binDir, arch, b.Key()))
		if err != nil {
			return nil, fmt.Errorf("%s: %w (build it first: make ARCH=%s)", m.Name, err, arch)
		}
		out = append(out, data)
	}
	srcs := []string{m.Init, m.Scripts.Postinst, m.Scripts.Prerm}
	for _, in := range m.Installs {
		srcs = append(srcs, in.Src)
	}
	srcs = append(srcs, m.UCIDefaults...)
	for _, src := range srcs {
		if src == "" {
			continue
		}
		data, err := os.ReadFile(filepath.Join(m.Dir, "files", filepath.FromSlash(src)))
		if err != nil {
			return nil, err
		}
		out = append(out, data)
	}
	return out, nil
}
