package ipk

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Member is one tar header as stored in an archive.
type Member struct {
	Name     string // as stored, e.g. "./etc/config/x"
	Type     byte   // tar typeflag: '0' file, '5' dir, '2' symlink, ...
	Mode     int64  // permission bits as stored
	UID, GID int64
	Uname    string
	Gname    string
	Size     int64
	ModTime  int64 // seconds since the epoch
	Link     string
	Magic    string // the 8 magic+version bytes, "ustar  \x00" for GNU
}

// Info is what Read finds in an .ipk.
type Info struct {
	Fields    []Field  // control fields in file order
	Raw       []byte   // exact bytes of ./control
	Files     []string // data archive paths: "/" is the root, directories end in "/"
	Conffiles []string // ./conffiles lines, in file order
	// Scripts holds the other regular members of control.tar.gz
	// (postinst, prerm, postinst-pkg, ...) keyed by name without "./".
	Scripts map[string][]byte

	Outer, ControlMembers, DataMembers []Member // every tar header, in order

	DataGzSize  int64 // size of data.tar.gz (23.05 Installed-Size)
	DataTarSize int64 // size of the uncompressed data tar (24.10 Installed-Size)
}

// Bounds on what Read keeps in memory from the control archive.
const maxControlMember = 1 << 20

// Read parses an .ipk: the outer gzip'd tar, control.tar.gz (./control,
// ./conffiles, scripts) and the file list of data.tar.gz. It checks what
// opkg checks (gzip, tar magic and checksums, no PAX, the mandatory
// control fields Package, Version and Architecture) and reports the first
// problem with the member it was found in.
func Read(r io.Reader) (*Info, error) { return read(r, true) }

// ReadControl is Read without listing data.tar.gz: Files, DataTarSize and
// the data headers stay empty. Indexing needs only the control file, and
// inflating a multi-megabyte binary per package would dominate its time.
func ReadControl(r io.Reader) (*Info, error) { return read(r, false) }

func read(r io.Reader, withData bool) (*Info, error) {
	br := bufio.NewReader(r)
	if head, _ := br.Peek(8); string(head) == "!<arch>\n" {
		return nil, errors.New("ipk: ar archive: opkg needs a gzip-compressed tar")
	}
	gz, err := gzip.NewReader(br)
	if err != nil {
		return nil, fmt.Errorf("ipk: outer archive is not gzip-compressed: %w", err)
	}
	info := &Info{Scripts: map[string][]byte{}}
	tr := &tarReader{r: gz}
	var sawData, sawControl bool
	for {
		h, err := tr.next()
		if err == errEndOfArchive {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("ipk: outer archive: %w", err)
		}
		info.Outer = append(info.Outer, member(h))
		name := strings.TrimSuffix(strings.TrimPrefix(h.Name, "./"), "/")
		isReg := h.Typeflag == typeReg || h.Typeflag == typeRegA
		switch {
		case name == "data.tar.gz" || name == "control.tar.gz":
			if !isReg {
				return nil, fmt.Errorf("ipk: %s is not a regular file", h.Name)
			}
			if name == "data.tar.gz" {
				if sawData {
					return nil, errors.New("ipk: data.tar.gz appears twice")
				}
				sawData = true
				info.DataGzSize = h.Size
				if withData {
					err = readData(tr, info)
				}
			} else {
				if sawControl {
					return nil, errors.New("ipk: control.tar.gz appears twice")
				}
				sawControl = true
				err = readControl(tr, info)
			}
			if err != nil {
				return nil, err
			}
		case strings.HasPrefix(name, "data.tar.") || strings.HasPrefix(name, "control.tar."):
			return nil, fmt.Errorf("ipk: %s: opkg only reads gzip-compressed inner archives", h.Name)
		}
	}
	// Drain to the end so gzip verifies its CRC and length: a truncated
	// file must not pass just because the tar end marker survived.
	if _, err := io.Copy(io.Discard, gz); err != nil {
		return nil, fmt.Errorf("ipk: outer archive: %w", err)
	}
	switch {
	case !sawControl:
		return nil, errors.New("ipk: no control.tar.gz")
	case !sawData:
		return nil, errors.New("ipk: no data.tar.gz")
	case info.Raw == nil:
		return nil, errors.New("ipk: control.tar.gz has no ./control")
	}
	info.Fields, err = ParseControl(info.Raw)
	if err != nil {
		return nil, fmt.Errorf("ipk: ./control: %w", err)
	}
	for _, f := range []string{"Package", "Version", "Architecture"} {
		if Get(info.Fields, f) == "" {
			return nil, fmt.Errorf("ipk: ./control: missing mandatory field %s", f)
		}
	}
	return info, nil
}

func member(h *tarHeader) Member {
	return Member{Name: h.Name, Type: h.Typeflag, Mode: h.Mode, UID: h.UID, GID: h.GID,
		Uname: h.Uname, Gname: h.Gname, Size: h.Size, ModTime: h.ModTime, Link: h.Linkname, Magic: h.Magic}
}

// countingReader counts bytes to measure the uncompressed data tar.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func readData(outer *tarReader, info *Info) error {
	gz, err := gzip.NewReader(outer)
	if err != nil {
		return fmt.Errorf("ipk: data.tar.gz: %w", noEOF(err))
	}
	cr := &countingReader{r: gz}
	tr := &tarReader{r: cr}
	for {
		h, err := tr.next()
		if err == errEndOfArchive {
			break
		}
		if err != nil {
			return fmt.Errorf("ipk: data.tar.gz: %w", err)
		}
		info.DataMembers = append(info.DataMembers, member(h))
		info.Files = append(info.Files, absPath(h.Name))
	}
	if _, err := io.Copy(io.Discard, cr); err != nil {
		return fmt.Errorf("ipk: data.tar.gz: %w", err)
	}
	info.DataTarSize = cr.n
	return nil
}

func readControl(outer *tarReader, info *Info) error {
	gz, err := gzip.NewReader(outer)
	if err != nil {
		return fmt.Errorf("ipk: control.tar.gz: %w", noEOF(err))
	}
	tr := &tarReader{r: gz}
	for {
		h, err := tr.next()
		if err == errEndOfArchive {
			break
		}
		if err != nil {
			return fmt.Errorf("ipk: control.tar.gz: %w", err)
		}
		info.ControlMembers = append(info.ControlMembers, member(h))
		name := strings.TrimPrefix(h.Name, "./")
		if h.Typeflag != typeReg && h.Typeflag != typeRegA {
			continue
		}
		if h.Size > maxControlMember {
			return fmt.Errorf("ipk: control.tar.gz: %s is %d bytes, more than the %d we accept", h.Name, h.Size, maxControlMember)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			return fmt.Errorf("ipk: control.tar.gz: %s: %w", h.Name, err)
		}
		switch name {
		case "control":
			if info.Raw != nil {
				return errors.New("ipk: control.tar.gz: ./control appears twice")
			}
			info.Raw = data
		case "conffiles":
			for _, l := range strings.Split(string(data), "\n") {
				if l = strings.TrimSpace(l); l != "" {
					info.Conffiles = append(info.Conffiles, l)
				}
			}
		default:
			info.Scripts[name] = data
		}
	}
	if _, err := io.Copy(io.Discard, gz); err != nil {
		return fmt.Errorf("ipk: control.tar.gz: %w", err)
	}
	return nil
}

// absPath turns a member name ("./etc/x", "etc/x", "./") into an absolute
// path, keeping a directory's trailing slash.
func absPath(name string) string {
	if name == "." || strings.HasPrefix(name, "./") {
		name = name[1:]
	}
	if !strings.HasPrefix(name, "/") {
		name = "/" + name
	}
	return name
}

// ReadBytes is Read for an .ipk held in memory.
func ReadBytes(b []byte) (*Info, error) { return Read(bytes.NewReader(b)) }
