package profiles

import (
	"bytes"
	"crypto/ecdh"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/slackhq/nebula/cert"

	"github.com/meshnode/meshnode/internal/uci"
)

// HubAddress is the hub's overlay address, the mesh's NTP server.
const HubAddress = "10.0.4.1"

// OverlayFile is one file of the FILES overlay.
type OverlayFile struct {
	Mode os.FileMode
	Data []byte
}

// Node is what a personal image carries for one node.
type Node struct {
	Name   string
	Cert   []byte // node.crt (PEM)
	Key    []byte // node.key (PEM), secret
	CA     []byte // ca.crt (PEM)
	Config []byte // the agent's UCI configuration
	Wifi   []byte // optional: wifi keys (UCI 'config wifi')
	// Lighthouses are 'config lighthouse' sections (the CA's issued
	// lighthouses file), appended when Config is built from the certificate.
	Lighthouses []byte
}

// Image is everything one ImageBuilder run needs.
type Image struct {
	Name     string // <device>-<role>[-personal-<node>]
	Device   *Device
	Role     *Role
	Budget   *Budget
	Packages []string // PACKAGES: ours, the role's extras, wifi extras
	Overlay  map[string]OverlayFile
	Personal bool
}

// PlanImage checks a device and role (and node) and prepares the image:
// every refusal happens here, before anything is built.
func (s *Set) PlanImage(deviceID, roleID string, node *Node, headroom int64) (*Image, error) {
	d, err := s.Device(deviceID)
	if err != nil {
		return nil, err
	}
	r, err := s.Role(roleID)
	if err != nil {
		return nil, err
	}
	for _, p := range r.Packages {
		if d.Lite {
			break
		}
		if s.Pending[p] {
			return nil, fmt.Errorf("%s: package %s is pending and cannot be built", r.File, p)
		}
	}
	b := s.Budget(d, r, headroom)
	if err := b.Err(); err != nil {
		return nil, err
	}
	for _, p := range b.Packages {
		if s.Pending[p] {
			return nil, fmt.Errorf("%s as %s: package %s is pending (profiles/pending/): it cannot be built yet", d.ID, r.ID, p)
		}
	}
	img := &Image{Name: d.ID + "-" + r.ID, Device: d, Role: r, Budget: b, Overlay: map[string]OverlayFile{}}
	img.Packages = append(img.Packages, b.Packages...)
	img.Packages = append(img.Packages, r.Extra...)
	if len(d.Radios) > 0 {
		img.Packages = append(img.Packages, r.WifiExtra...)
	}
	if err := s.roleOverlay(img); err != nil {
		return nil, err
	}
	if node != nil {
		if err := img.addNode(node); err != nil {
			return nil, err
		}
	}
	return img, nil
}

func (s *Set) roleOverlay(img *Image) error {
	r := img.Role
	bool01 := func(b bool) string {
		if b {
			return "1"
		}
		return "0"
	}
	vars := [][2]string{
		{"MESHNODE_DEVICE", img.Device.ID},
		{"MESHNODE_ROLE", r.ID},
		{"MESHNODE_AGENT_ROLE", r.AgentRole},
		{"MESHNODE_ADDRESS", r.Address},
		{"MESHNODE_BACKBONE", r.Backbone},
		{"MESHNODE_AP", bool01(r.AP)},
		{"MESHNODE_NTP_SERVER", bool01(r.NTPServer)},
		{"MESHNODE_HUB", HubAddress},
		{"MESHNODE_MESH_ID", "meshnode"},
	}
	var b bytes.Buffer
	b.WriteString("# Written by meshkit image: the role profile the uci-defaults scripts read.\n")
	for _, v := range vars {
		fmt.Fprintf(&b, "%s=%s\n", v[0], shQuote(v[1]))
	}
	img.Overlay["lib/meshnode/profile"] = OverlayFile{Mode: 0o644, Data: b.Bytes()}
	dir := filepath.Join(s.Root, "profiles", "files")
	return filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		img.Overlay[filepath.ToSlash(rel)] = OverlayFile{Mode: 0o755, Data: data}
		return nil
	})
}

// shQuote quotes a value for a POSIX shell.
func shQuote(v string) string { return "'" + strings.ReplaceAll(v, "'", `'\''`) + "'" }

// addNode puts the node's identity into the overlay, after checking that
// the certificate is a Nebula certificate that belongs to the key.
func (img *Image) addNode(n *Node) error {
	if n.Name == "" {
		return errors.New("personal image: no node name")
	}
	if len(bytes.TrimSpace(n.Cert)) == 0 {
		return fmt.Errorf("node %s has no certificate (node.crt): sign its request with `meshkit ca sign` first", n.Name)
	}
	if len(bytes.TrimSpace(n.Key)) == 0 {
		return fmt.Errorf("node %s has no private key (node.key): a personal image needs the key that belongs to its certificate", n.Name)
	}
	if len(bytes.TrimSpace(n.CA)) == 0 {
		return fmt.Errorf("node %s has no CA certificate (ca.crt)", n.Name)
	}
	c, _, err := cert.UnmarshalCertificateFromPEM(n.Cert)
	if err != nil {
		return fmt.Errorf("node %s: node.crt is not a Nebula certificate: %v", n.Name, err)
	}
	if _, _, err := cert.UnmarshalCertificateFromPEM(n.CA); err != nil {
		return fmt.Errorf("node %s: ca.crt is not a Nebula certificate: %v", n.Name, err)
	}
	priv, _, curve, err := cert.UnmarshalPrivateKeyFromPEM(n.Key)
	if err != nil {
		return fmt.Errorf("node %s: node.key is not a Nebula private key: %v", n.Name, err)
	}
	if curve != cert.Curve_CURVE25519 || c.Curve() != cert.Curve_CURVE25519 {
		return fmt.Errorf("node %s: only X25519 node keys are supported", n.Name)
	}
	k, err := ecdh.X25519().NewPrivateKey(priv)
	if err != nil {
		return fmt.Errorf("node %s: node.key: %v", n.Name, err)
	}
	if !bytes.Equal(k.PublicKey().Bytes(), c.PublicKey()) {
		return fmt.Errorf("node %s: node.key does not belong to node.crt (%s)", n.Name, c.Name())
	}
	cfg := n.Config
	if len(cfg) == 0 {
		if cfg, err = img.defaultNodeConfig(c); err != nil {
			return err
		}
		if len(n.Lighthouses) > 0 {
			cfg = append(append(cfg, '\n'), n.Lighthouses...)
		}
	}
	if _, err := uci.Parse("meshnode", cfg); err != nil {
		return fmt.Errorf("node %s: configuration: %v", n.Name, err)
	}
	img.Personal = true
	img.Name += "-personal-" + n.Name
	img.Overlay["etc/meshnode/node.crt"] = OverlayFile{Mode: 0o644, Data: n.Cert}
	img.Overlay["etc/meshnode/node.key"] = OverlayFile{Mode: 0o600, Data: n.Key}
	img.Overlay["etc/meshnode/ca.crt"] = OverlayFile{Mode: 0o644, Data: n.CA}
	img.Overlay["etc/meshnode/personal.uci"] = OverlayFile{Mode: 0o600, Data: cfg}
	if len(n.Wifi) > 0 {
		w, err := wifiSecrets(n.Wifi)
		if err != nil {
			return fmt.Errorf("node %s: wifi: %v", n.Name, err)
		}
		img.Overlay["etc/meshnode/wifi"] = OverlayFile{Mode: 0o600, Data: w}
	}
	return nil
}

// defaultNodeConfig is the agent's configuration for a node whose CA
// directory holds only the certificate: role from the profile, address
// from the certificate.
func (img *Image) defaultNodeConfig(c cert.Certificate) ([]byte, error) {
	if img.Role.AgentRole == "none" {
		return nil, fmt.Errorf("role %s runs no agent: a personal image has nothing to configure", img.Role.ID)
	}
	nets := c.Networks()
	if len(nets) == 0 {
		return nil, fmt.Errorf("certificate %s has no overlay address", c.Name())
	}
	f := uci.NewFile("meshnode")
	s, err := f.AddSection("overlay", "overlay")
	if err != nil {
		return nil, err
	}
	for _, kv := range [][2]string{{"role", img.Role.AgentRole}, {"address", nets[0].String()},
		{"ca", "/etc/meshnode/ca.crt"}, {"cert", "/etc/meshnode/node.crt"}, {"key", "/etc/meshnode/node.key"}} {
		if err := s.Set(kv[0], kv[1]); err != nil {
			return nil, err
		}
	}
	return f.Marshal(), nil
}

// wifiSecrets turns the node's 'config wifi' (mesh_key, ap_key, ap_ssid)
// into the shell file 83-meshnode-wifi sources, checking SAE key lengths.
func wifiSecrets(data []byte) ([]byte, error) {
	f, err := uci.Parse("wifi", data)
	if err != nil {
		return nil, err
	}
	ws := f.SectionsOfType("wifi")
	if len(ws) != 1 {
		return nil, errors.New("want exactly one 'config wifi' section")
	}
	var b bytes.Buffer
	for _, kv := range [][2]string{{"mesh_key", "MESH_KEY"}, {"ap_key", "AP_KEY"}, {"ap_ssid", "AP_SSID"}} {
		v, ok := ws[0].Get(kv[0])
		if !ok {
			continue
		}
		if strings.HasSuffix(kv[0], "_key") && (len(v) < 8 || len(v) > 63) {
			return nil, fmt.Errorf("%s: WPA3 passwords have 8 to 63 characters", kv[0])
		}
		fmt.Fprintf(&b, "%s=%s\n", kv[1], shQuote(v))
	}
	return b.Bytes(), nil
}

// WriteOverlay writes the overlay into dir with its modes; dir is 0700
// for personal images (it holds the node's key), 0755 otherwise.
func (img *Image) WriteOverlay(dir string) error {
	mode := os.FileMode(0o755)
	if img.Personal {
		mode = 0o700
	}
	if err := os.MkdirAll(dir, mode); err != nil {
		return err
	}
	if err := os.Chmod(dir, mode); err != nil {
		return err
	}
	for _, p := range img.OverlayPaths() {
		f := img.Overlay[p]
		full := filepath.Join(dir, filepath.FromSlash(p))
		dmode := os.FileMode(0o755)
		if strings.HasPrefix(p, "etc/meshnode/") {
			dmode = 0o700
		}
		if err := os.MkdirAll(filepath.Dir(full), dmode); err != nil {
			return err
		}
		if err := os.WriteFile(full, f.Data, f.Mode); err != nil {
			return err
		}
		if err := os.Chmod(full, f.Mode); err != nil { // umask
			return err
		}
	}
	return nil
}

// OverlayPaths lists the overlay's files, sorted.
func (img *Image) OverlayPaths() []string {
	var out []string
	for p := range img.Overlay {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// Invocation says how to run the ImageBuilder for an image.
type Invocation struct {
	Root         string // repository
	FeedDir      string // out/feed (signed feeds and keys/)
	OverlayDir   string // the FILES overlay, written by WriteOverlay
	OutDir       string // out/images/<name>
	ImageBuilder string // an unpacked ImageBuilder; "" = Docker
	FeedName     string
}

// Env is the entrypoint's environment for an image.
func (img *Image) Env(inv Invocation, feed, files, out, ib string) []string {
	personal := "0"
	if img.Personal {
		personal = "1"
	}
	return []string{
		"IB_DIR=" + ib,
		"FEED_DIR=" + feed,
		"FEED_NAME=" + inv.FeedName,
		"ARCH=" + img.Device.Arch,
		"PROFILE=" + img.Device.Profile,
		"PACKAGES=" + strings.Join(img.Packages, " "),
		"FILES=" + files,
		"BIN_DIR=" + out,
		"IMAGE_NAME=" + img.Name,
		"IMAGE_MAX=" + strconv.FormatInt(img.Device.ImageMax, 10),
		"HEADROOM=" + strconv.FormatInt(img.Budget.Headroom, 10),
		"PERSONAL=" + personal,
	}
}

// DockerImage is the local tag of our ImageBuilder container for a device.
func (img *Image) DockerImage() string { return "meshnode-imagebuilder:" + img.Device.ContainerTag() }

// Commands are the command lines that build the image, in order.
func (img *Image) Commands(inv Invocation) [][]string {
	entry := filepath.Join(inv.Root, "sdk-docker", "entrypoint.sh")
	if inv.ImageBuilder != "" {
		cmd := []string{"env"}
		cmd = append(cmd, img.Env(inv, inv.FeedDir, inv.OverlayDir, inv.OutDir, inv.ImageBuilder)...)
		return [][]string{append(cmd, "sh", entry)}
	}
	build := []string{"docker", "build", "--build-arg", "IB_TAG=" + img.Device.ContainerTag(),
		"-t", img.DockerImage(), filepath.Join(inv.Root, "sdk-docker")}
	run := []string{"docker", "run", "--rm",
		"-v", inv.FeedDir + ":/meshnode/feed:ro",
		"-v", inv.OverlayDir + ":/meshnode/files:ro",
		"-v", inv.OutDir + ":/meshnode/out"}
	for _, e := range img.Env(inv, "/meshnode/feed", "/meshnode/files", "/meshnode/out", "/builder") {
		run = append(run, "-e", e)
	}
	run = append(run, img.DockerImage())
	return [][]string{build, run}
}

// ShellLine prints a command so it can be pasted into a shell.
func ShellLine(cmd []string) string {
	var parts []string
	for _, a := range cmd {
		if a != "" && strings.Trim(a, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:=,+@") == "" {
			parts = append(parts, a)
		} else {
			parts = append(parts, shQuote(a))
		}
	}
	return strings.Join(parts, " ")
}
