package profiles

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/meshnode/meshnode/internal/manifest"
	"github.com/meshnode/meshnode/internal/uci"
)

// KiB is the unit of every size in the tables.
const KiB = 1024

// DefaultHeadroom is what a device must keep free after our packages
// (Gluon's contrib/check-image-size.py keeps 256 KiB).
const DefaultHeadroom = 256 * KiB

// Device is one router model.
type Device struct {
	ID, File  string
	Line      int
	Title     string
	OpenWrt   string // release, e.g. 24.10.0
	Target    string
	Subtarget string
	Profile   string // ImageBuilder PROFILE
	Arch      string // package architecture
	Flash     int64  // bytes
	RAM       int64
	ImageMax  int64 // largest sysupgrade image
	ImageBase int64 // stock image with default packages
	Radios    []string
	Lite      bool // agent 'lite': no Nebula fits
}

// Free is the room for packages beyond a stock image.
func (d *Device) Free() int64 { return d.ImageMax - d.ImageBase }

// HasRadio reports whether the device has a radio in band b (2g, 5g).
func (d *Device) HasRadio(b string) bool {
	for _, r := range d.Radios {
		if r == b {
			return true
		}
	}
	return false
}

// SupportedDevice is the board name sysupgrade checks: the profile with
// its first '_' turned into ',' (include/image.mk).
func (d *Device) SupportedDevice() string { return strings.Replace(d.Profile, "_", ",", 1) }

// ContainerTag is the openwrt/imagebuilder image tag of the device's
// target, subtarget and release.
func (d *Device) ContainerTag() string { return d.Target + "-" + d.Subtarget + "-" + d.OpenWrt }

// Role is what a node does in the mesh.
type Role struct {
	ID, File      string
	Line          int
	Title         string
	AgentRole     string // hub, relay, uplink, client or none
	Address       string // default overlay address
	Packages      []string
	LitePackages  []string
	Extra         []string
	WifiExtra     []string
	ExtraSize     int64
	WifiExtraSize int64
	Backbone      string // mesh, p2p or none
	AP            bool
	NTPServer     bool
}

// Set is every profile, with the package definitions they refer to.
type Set struct {
	Root     string // repository
	Devices  []*Device
	Roles    []*Role
	Packages map[string]*manifest.Manifest // ours: packages/ and profiles/pending/
	Pending  map[string]bool               // defined only under profiles/pending/
	Sizes    *Sizes
}

// FieldError names the file, line and field that is wrong.
type FieldError = manifest.FieldError

var (
	idRe      = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*$`)
	releaseRe = regexp.MustCompile(`^[0-9]{2}\.[0-9]{2}\.[0-9]+$`)
	wordRe    = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*$`)
	profileRe = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]*$`)
	opkgRe    = regexp.MustCompile(`^-?[a-z0-9][a-z0-9_.+-]*$`)
	archRe    = regexp.MustCompile(`^[a-z0-9_]+(_[a-z0-9-]+)*$`)
	sizeRe    = regexp.MustCompile(`^([0-9]+)([KMG])$`)
)

// AgentRoles are the roles /etc/config/meshnode knows, plus none.
var AgentRoles = []string{"hub", "relay", "uplink", "client", "none"}

// Load reads profiles/ below the repository root and checks every field,
// every package a role names and every size the budget needs.
func Load(root string) (*Set, error) {
	s := &Set{Root: root, Packages: map[string]*manifest.Manifest{}, Pending: map[string]bool{}}
	ms, err := manifest.LoadAll(root)
	if err != nil {
		return nil, err
	}
	for _, m := range ms {
		s.Packages[m.Name] = m
	}
	pend, _ := filepath.Glob(filepath.Join(root, "profiles", "pending", "*", "manifest"))
	sort.Strings(pend)
	for _, f := range pend {
		m, err := manifest.Load(f, root)
		if err != nil {
			return nil, err
		}
		if _, dup := s.Packages[m.Name]; dup {
			return nil, &FieldError{File: f, Field: "name", Msg: fmt.Sprintf("%s is defined in packages/ too: remove the pending copy", m.Name)}
		}
		s.Packages[m.Name] = m
		s.Pending[m.Name] = true
	}
	dir := filepath.Join(root, "profiles")
	if s.Devices, err = loadAll(filepath.Join(dir, "devices"), s.readDevice); err != nil {
		return nil, err
	}
	if s.Roles, err = loadAll(filepath.Join(dir, "roles"), s.readRole); err != nil {
		return nil, err
	}
	if s.Sizes, err = ReadSizes(filepath.Join(dir, "sizes")); err != nil {
		return nil, err
	}
	return s, nil
}

// loadAll reads every file of a directory, sorted by name.
func loadAll[T any](dir string, read func(file string) (T, error)) ([]T, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []T
	for _, e := range ents {
		if e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		v, err := read(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no profiles", dir)
	}
	return out, nil
}

// section returns the one section of type typ a profile file holds, named
// like the file, and rejects unknown options.
func section(file, typ string, allowed []string) (*uci.Section, error) {
	f, err := uci.ReadFile(file)
	if err != nil {
		return nil, err
	}
	if len(f.Sections) != 1 || f.Sections[0].Type != typ {
		return nil, &FieldError{File: file, Msg: fmt.Sprintf("want exactly one 'config %s' section", typ)}
	}
	sec := f.Sections[0]
	id := filepath.Base(file)
	if !idRe.MatchString(id) {
		return nil, &FieldError{File: file, Line: sec.Line, Msg: fmt.Sprintf("file name %q: lower-case letters, digits and '-' only", id)}
	}
	// The file name is the id (UCI section names cannot hold '-').
	if sec.Name != "" {
		return nil, &FieldError{File: file, Line: sec.Line, Msg: fmt.Sprintf("section name %q: leave it out, the file name %q is the id", sec.Name, id)}
	}
	for _, o := range sec.Options() {
		ok := false
		for _, a := range allowed {
			ok = ok || a == o.Name
		}
		if !ok {
			return nil, &FieldError{File: file, Line: o.Line, Field: o.Name, Msg: fmt.Sprintf("unknown option in 'config %s' (known: %s)", typ, strings.Join(allowed, ", "))}
		}
	}
	return sec, nil
}

// reader collects typed fields of one section, stopping at the first error.
type reader struct {
	file string
	sec  *uci.Section
	err  error
}

func (r *reader) fail(name, msg string) {
	if r.err == nil {
		line := r.sec.Line
		if o := r.sec.Option(name); o != nil {
			line = o.Line
		}
		r.err = &FieldError{File: r.file, Line: line, Field: name, Msg: msg}
	}
}

func (r *reader) str(name string, re *regexp.Regexp) string {
	v, ok := r.sec.Get(name)
	if !ok || strings.TrimSpace(v) == "" {
		r.fail(name, fmt.Sprintf("missing in 'config %s'", r.sec.Type))
		return ""
	}
	if re != nil && !re.MatchString(v) {
		r.fail(name, fmt.Sprintf("%q is not valid here", v))
	}
	return v
}

func (r *reader) size(name string) int64 {
	v := r.str(name, nil)
	if r.err != nil {
		return 0
	}
	n, err := ParseSize(v)
	if err != nil {
		r.fail(name, err.Error())
	}
	return n
}

func (r *reader) boolean(name string) bool {
	switch v := r.str(name, nil); v {
	case "1":
		return true
	case "0", "":
		return false
	default:
		r.fail(name, fmt.Sprintf("%q: want 0 or 1", v))
		return false
	}
}

func (r *reader) oneOf(name string, values ...string) string {
	v := r.str(name, nil)
	for _, w := range values {
		if v == w {
			return v
		}
	}
	if r.err == nil {
		r.fail(name, fmt.Sprintf("%q: want one of %s", v, strings.Join(values, ", ")))
	}
	return v
}

// ParseSize reads 16000K, 16M or 8G as bytes.
func ParseSize(v string) (int64, error) {
	m := sizeRe.FindStringSubmatch(v)
	if m == nil {
		return 0, fmt.Errorf("%q is not a size like 512K, 16M or 8G", v)
	}
	n, err := strconv.ParseInt(m[1], 10, 64)
	if err != nil || n > 1<<30 {
		return 0, fmt.Errorf("%q is too large", v)
	}
	return n << map[string]uint{"K": 10, "M": 20, "G": 30}[m[2]], nil
}

var deviceOptions = []string{"title", "openwrt", "target", "subtarget", "profile", "arch", "flash", "ram",
	"image_max", "image_base", "radio", "agent"}

func (s *Set) readDevice(file string) (*Device, error) {
	sec, err := section(file, "device", deviceOptions)
	if err != nil {
		return nil, err
	}
	r := &reader{file: file, sec: sec}
	d := &Device{ID: filepath.Base(file), File: file, Line: sec.Line}
	d.Title = r.str("title", nil)
	d.OpenWrt = r.str("openwrt", releaseRe)
	d.Target = r.str("target", wordRe)
	d.Subtarget = r.str("subtarget", wordRe)
	d.Profile = r.str("profile", profileRe)
	d.Arch = r.str("arch", archRe)
	d.Flash = r.size("flash")
	d.RAM = r.size("ram")
	d.ImageMax = r.size("image_max")
	d.ImageBase = r.size("image_base")
	d.Lite = r.oneOf("agent", "full", "lite") == "lite"
	d.Radios = sec.List("radio")
	for _, b := range d.Radios {
		if b != "2g" && b != "5g" {
			r.fail("radio", fmt.Sprintf("%q: want 2g or 5g", b))
		}
	}
	if r.err != nil {
		return nil, r.err
	}
	switch {
	case d.ImageMax > d.Flash:
		r.fail("image_max", fmt.Sprintf("%s is more than the flash (%s)", FormatSize(d.ImageMax), FormatSize(d.Flash)))
	case d.ImageBase >= d.ImageMax:
		r.fail("image_base", fmt.Sprintf("%s leaves no room below image_max %s", FormatSize(d.ImageBase), FormatSize(d.ImageMax)))
	}
	if d.Arch != "" && !knownArch(d.Arch) {
		r.fail("arch", fmt.Sprintf("%q is not an architecture meshkit builds (see internal/build/targets.go)", d.Arch))
	}
	return d, r.err
}

var roleOptions = []string{"title", "agent_role", "address", "packages", "lite_packages", "extra", "wifi_extra",
	"extra_size", "wifi_extra_size", "backbone", "ap", "ntp_server"}

func (s *Set) readRole(file string) (*Role, error) {
	sec, err := section(file, "role", roleOptions)
	if err != nil {
		return nil, err
	}
	r := &reader{file: file, sec: sec}
	ro := &Role{ID: filepath.Base(file), File: file, Line: sec.Line}
	ro.Title = r.str("title", nil)
	ro.AgentRole = r.oneOf("agent_role", AgentRoles...)
	if ro.AgentRole != "none" {
		ro.Address = r.str("address", nil)
	}
	ro.Packages = sec.List("packages")
	ro.LitePackages = sec.List("lite_packages")
	ro.Extra = sec.List("extra")
	ro.WifiExtra = sec.List("wifi_extra")
	ro.ExtraSize = r.size("extra_size")
	ro.WifiExtraSize = r.size("wifi_extra_size")
	ro.Backbone = r.oneOf("backbone", "mesh", "p2p", "none")
	ro.AP = r.boolean("ap")
	ro.NTPServer = r.boolean("ntp_server")
	if r.err != nil {
		return nil, r.err
	}
	if len(ro.Packages) == 0 {
		r.fail("packages", "a role needs at least one of our packages")
	}
	for _, l := range []struct {
		field string
		list  []string
	}{{"packages", ro.Packages}, {"lite_packages", ro.LitePackages}} {
		for _, p := range l.list {
			m, ok := s.Packages[p]
			switch {
			case !ok:
				r.fail(l.field, fmt.Sprintf("%q is not a package in packages/ or profiles/pending/", p))
			case l.field == "packages" && s.Pending[p]:
				r.fail(l.field, fmt.Sprintf("%q is pending (profiles/pending/): it cannot be built yet", p))
			case p == "meshnode" && ro.AgentRole == "none", m.Name == "meshnode" && l.field == "lite_packages":
				r.fail(l.field, fmt.Sprintf("%q does not belong here (agent_role %s)", p, ro.AgentRole))
			}
		}
	}
	for _, l := range []struct {
		field string
		list  []string
	}{{"packages", ro.Packages}, {"lite_packages", ro.LitePackages}} {
		for _, p := range l.list {
			m := s.Packages[p]
			if m == nil {
				continue
			}
			for _, c := range m.Conflicts {
				if contains(l.list, c) {
					r.fail(l.field, fmt.Sprintf("%s and %s cannot be installed together (%s conflicts with %s)", p, c, p, c))
				}
			}
		}
	}
	if ro.AgentRole != "none" && !contains(ro.Packages, "meshnode") {
		r.fail("packages", fmt.Sprintf("agent_role %s needs the meshnode package", ro.AgentRole))
	}
	for _, l := range []struct {
		field string
		list  []string
	}{{"extra", ro.Extra}, {"wifi_extra", ro.WifiExtra}} {
		for _, p := range l.list {
			if !opkgRe.MatchString(p) {
				r.fail(l.field, fmt.Sprintf("%q is not an opkg package name (a leading '-' removes one)", p))
			}
		}
	}
	return ro, r.err
}

func knownArch(a string) bool {
	for _, t := range knownArches {
		if t == a {
			return true
		}
	}
	return false
}

// knownArches are the architectures internal/build compiles for.
var knownArches = []string{"mips_24kc", "mipsel_24kc", "arm_cortex-a7_neon-vfpv4", "aarch64_cortex-a53", "x86_64"}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// Device finds a device by id; the error lists the known ones.
func (s *Set) Device(id string) (*Device, error) {
	var ids []string
	for _, d := range s.Devices {
		if d.ID == id {
			return d, nil
		}
		ids = append(ids, d.ID)
	}
	return nil, fmt.Errorf("unknown device %q (known: %s)", id, strings.Join(ids, ", "))
}

// Role finds a role by id; the error lists the known ones.
func (s *Set) Role(id string) (*Role, error) {
	var ids []string
	for _, r := range s.Roles {
		if r.ID == id {
			return r, nil
		}
		ids = append(ids, r.ID)
	}
	return nil, fmt.Errorf("unknown role %q (known: %s)", id, strings.Join(ids, ", "))
}

// FormatSize prints bytes as KiB, the unit flash budgets are read in.
func FormatSize(n int64) string {
	if n < 0 {
		return "-" + FormatSize(-n)
	}
	return strconv.FormatInt((n+KiB-1)/KiB, 10) + "K"
}
