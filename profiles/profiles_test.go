package profiles

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/meshnode/meshnode/agent/overlay/certtest"
	"github.com/meshnode/meshnode/internal/golden"
	"github.com/meshnode/meshnode/internal/manifest"
)

const repoRoot = ".."

func load(t *testing.T) *Set {
	t.Helper()
	s, err := Load(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestDevicesMatchFacts pins the device table of facts-openwrt.md §6.
func TestDevicesMatchFacts(t *testing.T) {
	s := load(t)
	want := map[string]string{
		"gl-ar300m":           "ath79/nand glinet_gl-ar300m-nor mips_24kc 16M 128M",
		"gl-ar750s":           "ath79/nand glinet_gl-ar750s-nor mips_24kc 16M 128M",
		"gl-mt300n-v2":        "ramips/mt76x8 glinet_gl-mt300n-v2 mipsel_24kc 16M 128M",
		"gl-mt3000":           "mediatek/filogic glinet_gl-mt3000 aarch64_cortex-a53 256M 512M",
		"gl-mt6000":           "mediatek/filogic glinet_gl-mt6000 aarch64_cortex-a53 8192M 1024M",
		"nanostation-m-xw":    "ath79/generic ubnt_nanostation-m-xw mips_24kc 8M 64M",
		"nanostation-ac":      "ath79/generic ubnt_nanostation-ac mips_24kc 16M 64M",
		"nanostation-ac-loco": "ath79/generic ubnt_nanostation-ac-loco mips_24kc 16M 64M",
		"x86-64":              "x86/64 generic x86_64 4096M 1024M",
	}
	got := map[string]string{}
	for _, d := range s.Devices {
		got[d.ID] = strings.Join([]string{d.Target + "/" + d.Subtarget, d.Profile, d.Arch,
			strings.TrimSuffix(FormatSize(d.Flash/KiB), "K") + "M", strings.TrimSuffix(FormatSize(d.RAM/KiB), "K") + "M"}, " ")
	}
	for id, w := range want {
		if got[id] != w {
			t.Errorf("%s: %q, want %q", id, got[id], w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("devices %v", got)
	}
	d, _ := s.Device("gl-ar300m")
	if d.SupportedDevice() != "glinet,gl-ar300m-nor" || d.ContainerTag() != "ath79-nand-24.10.0" {
		t.Errorf("supported %q tag %q", d.SupportedDevice(), d.ContainerTag())
	}
	if nsm, _ := s.Device("nanostation-m-xw"); !nsm.Lite {
		t.Error("the 8 MiB NanoStation M XW must get the lite package set")
	}
}

// TestRoles: every role has SAE-capable packages, the backbone it needs,
// and only the hub serves NTP.
func TestRoles(t *testing.T) {
	s := load(t)
	var ids []string
	for _, r := range s.Roles {
		ids = append(ids, r.ID)
		if r.NTPServer != (r.ID == "hub") {
			t.Errorf("%s: ntp_server %v", r.ID, r.NTPServer)
		}
		if r.Backbone == "mesh" && !contains(r.WifiExtra, "wpad-mesh-mbedtls") {
			t.Errorf("%s: an encrypted 802.11s backbone needs wpad-mesh-mbedtls", r.ID)
		}
		if r.Backbone != "none" && !contains(r.Extra, "ustp") {
			t.Errorf("%s: RSTP on the backbone bridge needs ustp", r.ID)
		}
	}
	if strings.Join(ids, " ") != "client hub lora-only relay uplink" {
		t.Errorf("roles %v", ids)
	}
}

// TestLitePackage: meshnode-lite is built with the 'lite' tag, conflicts
// with meshnode, agrees with its Makefile, and is what the 8 MiB board's
// roles install.
func TestLitePackage(t *testing.T) {
	s := load(t)
	m := s.Packages["meshnode-lite"]
	if m == nil || s.Pending["meshnode-lite"] {
		t.Fatal("meshnode-lite is not defined in packages/")
	}
	if strings.Join(m.BuildTags(), ",") != "lite" {
		t.Errorf("tags %v", m.BuildTags())
	}
	if strings.Join(m.Conflicts, ",") != "meshnode" {
		t.Errorf("conflicts %v", m.Conflicts)
	}
	diffs, err := manifest.CheckBuildroot(m)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range diffs {
		t.Error(d)
	}
	d, _ := s.Device("nanostation-m-xw")
	for _, id := range []string{"lora-only", "relay"} {
		r, _ := s.Role(id)
		b := s.Budget(d, r, 0)
		if !b.OK() || !contains(b.Packages, "meshnode-lite") || contains(b.Packages, "meshnode") {
			t.Errorf("%s on %s: packages %v, %v", id, d.ID, b.Packages, b.Err())
		}
	}
}

// TestConflictingPackagesInARole: a role cannot list two packages that
// conflict (meshnode and meshnode-lite).
func TestConflictingPackagesInARole(t *testing.T) {
	s := load(t)
	r, _ := s.Role("relay")
	f := r.File
	data, err := os.ReadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	for _, dir := range []string{"packages", "profiles"} {
		if err := os.CopyFS(filepath.Join(root, dir), os.DirFS(filepath.Join(repoRoot, dir))); err != nil {
			t.Fatal(err)
		}
	}
	for _, m := range s.Packages {
		for _, b := range m.Binaries {
			if err := os.MkdirAll(filepath.Join(root, "cmd", b.Cmd), 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	bad := strings.Replace(string(data), "list packages 'meshnode'\n", "list packages 'meshnode'\n\tlist packages 'meshnode-lite'\n", 1)
	if err := os.WriteFile(filepath.Join(root, "profiles", "roles", "relay"), []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	// Both packages declare the conflict; whichever the loader meets first names it.
	if _, err := Load(root); err == nil || !strings.Contains(err.Error(), "cannot be installed together") ||
		!strings.Contains(err.Error(), "meshnode-lite") || !strings.Contains(err.Error(), "roles/relay:") {
		t.Errorf("error %v", err)
	}
}

// fixture is a minimal repository with one package and one device and role.
func fixture(t *testing.T, device, role, sizes string) string {
	t.Helper()
	root := t.TempDir()
	files := map[string]string{
		"cmd/demo/main.go":                                 "package main\n",
		"packages/demo/files/x":                            "x\n",
		"packages/demo/manifest":                           "config package\n\toption name 'demo'\n\toption version '1'\n\toption release '1'\n\toption section 'net'\n\toption title 'D'\n\toption description 'D'\n\toption license 'MIT'\n\nconfig binary\n\toption cmd 'demo'\n\toption dest '/usr/bin/demo'\n",
		"packages/meshnode/files/x":                        "x\n",
		"packages/meshnode/manifest":                       "config package\n\toption name 'meshnode'\n\toption version '1'\n\toption release '1'\n\toption section 'net'\n\toption title 'D'\n\toption description 'D'\n\toption license 'MIT'\n\nconfig install\n\toption src 'x'\n\toption dest '/etc/x'\n",
		"profiles/devices/box":                             device,
		"profiles/roles/node":                              role,
		"profiles/sizes":                                   sizes,
		"profiles/files/etc/uci-defaults/81-meshnode-role": "#!/bin/sh\nexit 0\n",
	}
	for n, c := range files {
		p := filepath.Join(root, filepath.FromSlash(n))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

const goodDevice = `config device
	option title 'Box'
	option openwrt '24.10.0'
	option target 'ath79'
	option subtarget 'generic'
	option profile 'vendor_box'
	option arch 'mips_24kc'
	option flash '8M'
	option ram '64M'
	option image_max '7552K'
	option image_base '5760K'
	list radio '5g'
	option agent 'full'
`

const goodRole = `config role
	option title 'Node'
	option agent_role 'relay'
	option address '10.0.4.33/24'
	list packages 'meshnode'
	list packages 'demo'
	list extra 'ustp'
	option extra_size '24K'
	option wifi_extra_size '100K'
	option backbone 'mesh'
	option ap '0'
	option ntp_server '0'
`

// 1792K free; demo 1000K + meshnode 10K + extras 124K = 1134K; 658K left.
const goodSizes = `config size
	option package 'demo'
	option arch 'mips_24kc'
	option raw '3000000'
	option xz '1000000'
	option squashfs '1024000'
	option source 'test'

config size
	option package 'meshnode'
	option arch 'mips_24kc'
	option raw '30000'
	option xz '9000'
	option squashfs '10240'
	option source 'test'
`

func TestBudgetArithmetic(t *testing.T) {
	s, err := Load(fixture(t, goodDevice, goodRole, goodSizes))
	if err != nil {
		t.Fatal(err)
	}
	d, r := s.Devices[0], s.Roles[0]
	b := s.Budget(d, r, 0)
	if b.Free != 1792*KiB || b.Ours != 1010*KiB || b.Extra != 124*KiB || b.Left != 658*KiB || !b.OK() {
		t.Errorf("budget %+v", b)
	}
	// Exactly the headroom left is enough; one byte more headroom is not.
	if b := s.Budget(d, r, 658*KiB); !b.OK() {
		t.Errorf("headroom = left refused: %s", b.Problem)
	}
	b = s.Budget(d, r, 658*KiB+1)
	if b.OK() || !strings.Contains(b.Problem, "leaving 658K: less than the 659K headroom") {
		t.Errorf("overrun not refused: %q", b.Problem)
	}
	if _, err := s.PlanImage("box", "node", nil, 700*KiB); err == nil || !strings.Contains(err.Error(), "box as node: needs 1134K") {
		t.Errorf("PlanImage over budget: %v", err)
	}
	// A device without the measured size of a package refuses too.
	s.Sizes = &Sizes{File: "sizes"}
	if b := s.Budget(d, r, 0); b.OK() || !strings.Contains(b.Problem, "no measured size for meshnode on mips_24kc") {
		t.Errorf("missing size: %q", b.Problem)
	}
}

// TestBadProfiles: every mistake names file, line and field.
func TestBadProfiles(t *testing.T) {
	rep := func(src, old, new string) string {
		if !strings.Contains(src, old) {
			t.Fatalf("fixture lacks %q", old)
		}
		return strings.Replace(src, old, new, 1)
	}
	cases := []struct{ name, device, role, sizes, want string }{
		{"missing profile", rep(goodDevice, "\toption profile 'vendor_box'\n", ""), goodRole, goodSizes, "devices/box:1: profile: missing in 'config device'"},
		{"bad size", rep(goodDevice, "option flash '8M'", "option flash '8 MB'"), goodRole, goodSizes, "devices/box:8: flash: \"8 MB\" is not a size"},
		{"unknown option", rep(goodDevice, "option ram", "option rom"), goodRole, goodSizes, "devices/box:9: rom: unknown option"},
		{"base over max", rep(goodDevice, "option image_base '5760K'", "option image_base '8M'"), goodRole, goodSizes, "image_base: 8192K leaves no room"},
		{"unknown arch", rep(goodDevice, "option arch 'mips_24kc'", "option arch 'mips_74kc'"), goodRole, goodSizes, "arch: \"mips_74kc\" is not an architecture"},
		{"bad release", rep(goodDevice, "option openwrt '24.10.0'", "option openwrt 'snapshot'"), goodRole, goodSizes, "devices/box:3: openwrt:"},
		{"bad radio", rep(goodDevice, "list radio '5g'", "list radio '60g'"), goodRole, goodSizes, "radio: \"60g\""},
		{"named section", rep(goodDevice, "config device", "config device 'box'"), goodRole, goodSizes, "section name \"box\""},
		{"unknown package", goodDevice, rep(goodRole, "list packages 'demo'", "list packages 'ghost'"), goodSizes, "roles/node:5: packages: \"ghost\" is not a package"},
		{"agent role", goodDevice, rep(goodRole, "option agent_role 'relay'", "option agent_role 'king'"), goodSizes, "roles/node:3: agent_role: \"king\": want one of"},
		{"agent without meshnode", goodDevice, rep(goodRole, "list packages 'meshnode'\n", ""), goodSizes, "agent_role relay needs the meshnode package"},
		{"bad backbone", goodDevice, rep(goodRole, "option backbone 'mesh'", "option backbone 'wire'"), goodSizes, "backbone: \"wire\""},
		{"bad extra", goodDevice, rep(goodRole, "list extra 'ustp'", "list extra 'Ustp!'"), goodSizes, "extra: \"Ustp!\""},
		{"size not a number", goodDevice, goodRole, rep(goodSizes, "option raw '3000000'", "option raw 'lots'"), "sizes:4: raw: \"lots\""},
		{"size twice", goodDevice, goodRole, goodSizes + "\n" + goodSizes, "measured twice"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Load(fixture(t, c.device, c.role, c.sizes))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v, want %q", err, c.want)
			}
		})
	}
}

func TestUnknownDeviceOrRole(t *testing.T) {
	s := load(t)
	if _, err := s.PlanImage("wrt54g", "relay", nil, 0); err == nil || !strings.Contains(err.Error(), `unknown device "wrt54g" (known: gl-ar300m,`) {
		t.Errorf("unknown device: %v", err)
	}
	if _, err := s.PlanImage("gl-ar300m", "king", nil, 0); err == nil || !strings.Contains(err.Error(), `unknown role "king" (known: client, hub,`) {
		t.Errorf("unknown role: %v", err)
	}
	if _, err := s.PlanImage("nanostation-m-xw", "hub", nil, 0); err == nil || !strings.Contains(err.Error(), "needs the full agent (Nebula)") {
		t.Errorf("hub on 8 MiB: %v", err)
	}
}

func TestNodeOverlay(t *testing.T) {
	s := load(t)
	ca, err := certtest.NewCA("test", 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	n, err := ca.Sign(certtest.Opts{Name: "kitchen-2", Address: "10.0.4.70/24"})
	if err != nil {
		t.Fatal(err)
	}
	node := &Node{Name: "kitchen-2", Cert: n.Cert, Key: n.Key, CA: ca.PEM,
		Lighthouses: []byte("config lighthouse\n\toption address '10.0.4.1'\n\tlist endpoint 'hub.example.org:4242'\n"),
		Wifi:        []byte("config wifi\n\toption mesh_key 'it''s a secret'\n\toption ap_key 'household-key'\n")}
	node.Wifi = []byte("config wifi\n\toption mesh_key 'mesh-secret-1'\n\toption ap_key 'household-key'\n")
	img, err := s.PlanImage("gl-ar750s", "uplink", node, 0)
	if err != nil {
		t.Fatal(err)
	}
	if img.Name != "gl-ar750s-uplink-personal-kitchen-2" || !img.Personal {
		t.Errorf("name %q personal %v", img.Name, img.Personal)
	}
	var list strings.Builder
	for _, p := range img.OverlayPaths() {
		f := img.Overlay[p]
		list.WriteString(f.Mode.String() + " " + p + "\n")
	}
	golden.Check(t, "testdata/overlay-personal.txt", []byte(list.String()))
	cfg := string(img.Overlay["etc/meshnode/personal.uci"].Data)
	for _, w := range []string{"option role 'uplink'", "option address '10.0.4.70/24'", "config lighthouse", "hub.example.org:4242"} {
		if !strings.Contains(cfg, w) {
			t.Errorf("node configuration lacks %q:\n%s", w, cfg)
		}
	}
	if w := string(img.Overlay["etc/meshnode/wifi"].Data); w != "MESH_KEY='mesh-secret-1'\nAP_KEY='household-key'\n" {
		t.Errorf("wifi %q", w)
	}
	dir := filepath.Join(t.TempDir(), "files")
	if err := img.WriteOverlay(dir); err != nil {
		t.Fatal(err)
	}
	for p, mode := range map[string]os.FileMode{".": 0o700, "etc/meshnode": 0o700, "etc/meshnode/node.key": 0o600,
		"etc/meshnode/wifi": 0o600, "etc/meshnode/personal.uci": 0o600, "etc/meshnode/node.crt": 0o644,
		"etc/uci-defaults/80-meshnode-node": 0o755} {
		st, err := os.Stat(filepath.Join(dir, p))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != mode {
			t.Errorf("%s: mode %o, want %o", p, st.Mode().Perm(), mode)
		}
	}

	// Every missing or wrong piece is refused before anything is built.
	other, _ := ca.Sign(certtest.Opts{Name: "other", Address: "10.0.4.71/24"})
	for _, c := range []struct {
		name string
		mod  func(n *Node)
		want string
	}{
		{"no certificate", func(n *Node) { n.Cert = nil }, "node kitchen-2 has no certificate (node.crt)"},
		{"no key", func(n *Node) { n.Key = nil }, "has no private key"},
		{"no CA", func(n *Node) { n.CA = nil }, "has no CA certificate"},
		{"garbage certificate", func(n *Node) { n.Cert = []byte("hello") }, "node.crt is not a Nebula certificate"},
		{"wrong key", func(n *Node) { n.Key = other.Key }, "node.key does not belong to node.crt"},
		{"short wifi key", func(n *Node) { n.Wifi = []byte("config wifi\n\toption mesh_key 'short'\n") }, "mesh_key: WPA3 passwords have 8 to 63"},
	} {
		bad := *node
		c.mod(&bad)
		if _, err := s.PlanImage("gl-ar750s", "uplink", &bad, 0); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
}

// TestInvocations pins the exact ImageBuilder command lines of every
// device and role (Docker and an unpacked ImageBuilder), or the refusal.
func TestInvocations(t *testing.T) {
	s := load(t)
	inv := Invocation{Root: "/src", FeedDir: "/src/out/feed", OverlayDir: "/src/out/images/.files", FeedName: "meshnode"}
	for _, d := range s.Devices {
		for _, r := range s.Roles {
			var b strings.Builder
			img, err := s.PlanImage(d.ID, r.ID, nil, 0)
			if err != nil {
				b.WriteString("REFUSED: " + err.Error() + "\n")
			} else {
				inv.OutDir = "/src/out/images/" + img.Name
				b.WriteString("# overlay\n")
				for _, p := range img.OverlayPaths() {
					b.WriteString(img.Overlay[p].Mode.String() + " " + p + "\n")
				}
				b.WriteString("# lib/meshnode/profile\n" + string(img.Overlay["lib/meshnode/profile"].Data))
				b.WriteString("# docker\n")
				for _, c := range img.Commands(inv) {
					b.WriteString(ShellLine(c) + "\n")
				}
				inv.ImageBuilder = "/media/usb/openwrt-imagebuilder"
				b.WriteString("# --imagebuilder\n")
				for _, c := range img.Commands(inv) {
					b.WriteString(ShellLine(c) + "\n")
				}
				inv.ImageBuilder = ""
			}
			golden.Check(t, filepath.Join("testdata", "invocations", d.ID+"-"+r.ID+".txt"), []byte(b.String()))
		}
	}
}

// TestWorkflowMatrix keeps the release workflow's matrix equal to the
// combinations the profiles accept.
func TestWorkflowMatrix(t *testing.T) {
	s := load(t)
	data, err := os.ReadFile(filepath.Join(repoRoot, ".github", "workflows", "images.yml"))
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`(?m)^\s*- \{device: ([a-z0-9-]+), role: ([a-z0-9-]+)\}\s*$`)
	var got, want []string
	for _, m := range re.FindAllStringSubmatch(string(data), -1) {
		got = append(got, m[1]+" "+m[2])
	}
	for _, b := range s.Budgets(0) {
		if b.OK() {
			want = append(want, b.Device.ID+" "+b.Role.ID)
		}
	}
	sort.Strings(got)
	sort.Strings(want)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("images.yml matrix differs from the accepted profiles:\n got %v\nwant %v", got, want)
	}
}

// TestShellcheck runs Debian's shellcheck on every shell script we ship
// for images.
func TestShellcheck(t *testing.T) {
	sc, err := exec.LookPath("shellcheck")
	if err != nil {
		t.Skip("shellcheck not installed (apt-get install shellcheck)")
	}
	files, _ := filepath.Glob(filepath.Join("files", "etc", "uci-defaults", "*"))
	files = append(files, filepath.Join(repoRoot, "packages", "meshnode-lite", "files", "meshnode.rpcd"))
	if len(files) < 5 {
		t.Fatalf("scripts: %v", files)
	}
	if out, err := exec.Command(sc, append([]string{"-s", "sh"}, files...)...).CombinedOutput(); err != nil {
		t.Errorf("shellcheck: %v\n%s", err, out)
	}
	if out, err := exec.Command(sc, filepath.Join(repoRoot, "sdk-docker", "entrypoint.sh")).CombinedOutput(); err != nil {
		t.Errorf("shellcheck entrypoint: %v\n%s", err, out)
	}
}
