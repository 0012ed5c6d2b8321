package ipk

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// We write and read tar ourselves instead of using archive/tar: opkg needs
// exact GNU headers (magic "ustar  \0", GNU 'L'/'K' long names, never PAX),
// and reading must refuse what opkg's libbb untar refuses (PAX, sparse,
// missing magic) rather than quietly accept it.

const (
	blockSize  = 512
	recordSize = 20 * blockSize // GNU tar's default blocking factor

	typeReg      = '0'
	typeRegA     = 0 // pre-POSIX regular file
	typeLink     = '1'
	typeSymlink  = '2'
	typeChar     = '3'
	typeBlock    = '4'
	typeDir      = '5'
	typeFifo     = '6'
	typeLongName = 'L'
	typeLongLink = 'K'

	longLinkName = "././@LongLink" // what GNU tar names its 'L'/'K' records

	maxOctal11 = 1<<33 - 1 // largest value in 11 octal digits (size, mtime)
	maxLongLen = 64 << 10  // bound on GNU long names we accept when reading
)

// tarHeader is the part of a tar header that opkg looks at.
type tarHeader struct {
	Name     string
	Linkname string
	Typeflag byte
	Mode     int64 // permission bits only, as stored
	UID, GID int64
	Uname    string
	Gname    string
	Size     int64
	ModTime  int64 // seconds since the epoch
	Magic    string
}

// tarWriter writes a GNU-format tar with every owner field zeroed.
type tarWriter struct {
	buf     bytes.Buffer
	modTime int64
}

// add writes one member; data is the content of regular files.
func (t *tarWriter) add(name string, typeflag byte, mode int64, link string, data []byte) error {
	if len(name) >= 100 {
		if err := t.longRecord(typeLongName, name); err != nil {
			return err
		}
		name = name[:99]
	}
	if len(link) >= 100 {
		if err := t.longRecord(typeLongLink, link); err != nil {
			return err
		}
		link = link[:99]
	}
	if err := t.header(name, typeflag, mode, link, int64(len(data))); err != nil {
		return err
	}
	t.content(data)
	return nil
}

// longRecord writes GNU's ././@LongLink record carrying a name of 100
// bytes or more (GNU tar keeps the header field NUL-terminated).
func (t *tarWriter) longRecord(typeflag byte, s string) error {
	data := append([]byte(s), 0)
	if err := t.header(longLinkName, typeflag, 0o644, "", int64(len(data))); err != nil {
		return err
	}
	t.content(data)
	return nil
}

func (t *tarWriter) header(name string, typeflag byte, mode int64, link string, size int64) error {
	if size > maxOctal11 {
		return fmt.Errorf("%s: %d bytes is too large for a tar header", name, size)
	}
	if t.modTime < 0 || t.modTime > maxOctal11 {
		return fmt.Errorf("modification time %d does not fit a tar header", t.modTime)
	}
	var h [blockSize]byte
	copy(h[0:100], name)
	putOctal(h[100:108], mode)
	putOctal(h[108:116], 0) // uid
	putOctal(h[116:124], 0) // gid
	putOctal(h[124:136], size)
	putOctal(h[136:148], t.modTime)
	h[156] = typeflag
	copy(h[157:257], link)
	copy(h[257:265], "ustar  \x00") // GNU magic + version
	// uname, gname stay empty; GNU leaves devmajor/devminor NUL for
	// non-device members; atime/ctime and the sparse area stay zero.
	copy(h[148:156], "        ")
	var sum int64
	for _, b := range h {
		sum += int64(b)
	}
	copy(h[148:156], fmt.Sprintf("%06o\x00 ", sum))
	t.buf.Write(h[:])
	return nil
}

func (t *tarWriter) content(data []byte) {
	t.buf.Write(data)
	if r := len(data) % blockSize; r != 0 {
		t.buf.Write(make([]byte, blockSize-r))
	}
}

// finish writes the two zero end blocks and pads to a whole 10240-byte
// record as GNU tar does (the 24.10 Installed-Size counts this padding).
func (t *tarWriter) finish() []byte {
	t.buf.Write(make([]byte, 2*blockSize))
	if r := t.buf.Len() % recordSize; r != 0 {
		t.buf.Write(make([]byte, recordSize-r))
	}
	return t.buf.Bytes()
}

// putOctal writes v as zero-padded octal filling the field but its last
// byte, which stays NUL (GNU tar's layout).
func putOctal(field []byte, v int64) {
	s := strconv.FormatInt(v, 8)
	n := len(field) - 1
	for i := 0; i < n-len(s); i++ {
		field[i] = '0'
	}
	copy(field[n-len(s):n], s)
	field[n] = 0
}

// tarReader reads the subset of tar that opkg's untar understands.
type tarReader struct {
	r       io.Reader
	remain  int64 // unread content bytes of the current member
	pad     int64 // padding after the current member's content
	offset  int64 // bytes consumed, for error messages
	members int
}

var errEndOfArchive = errors.New("end of archive")

// next returns the next member header, errEndOfArchive at a zero block or
// a clean EOF on a block boundary, or a descriptive error.
func (t *tarReader) next() (*tarHeader, error) {
	if err := t.skip(); err != nil {
		return nil, err
	}
	var longName, longLink *string
	for {
		var blk [blockSize]byte
		start := t.offset
		n, err := io.ReadFull(t.r, blk[:])
		t.offset += int64(n)
		if err == io.EOF && longName == nil && longLink == nil {
			return nil, errEndOfArchive
		}
		if err != nil {
			return nil, fmt.Errorf("truncated tar header at offset %d: %w", start, noEOF(err))
		}
		if blk == [blockSize]byte{} {
			if longName != nil || longLink != nil {
				return nil, fmt.Errorf("GNU long name record at offset %d is not followed by a member", start)
			}
			return nil, errEndOfArchive
		}
		h, err := parseHeader(&blk)
		if err != nil {
			return nil, fmt.Errorf("tar header at offset %d (member %d): %w", start, t.members+1, err)
		}
		t.remain = h.Size
		t.pad = (blockSize - h.Size%blockSize) % blockSize
		switch h.Typeflag {
		case typeLongName, typeLongLink:
			if h.Size > maxLongLen {
				return nil, fmt.Errorf("GNU long name record at offset %d: %d bytes is too long", start, h.Size)
			}
			data := make([]byte, h.Size)
			if _, err := io.ReadFull(t, data); err != nil {
				return nil, fmt.Errorf("GNU long name record at offset %d: %w", start, noEOF(err))
			}
			if err := t.skip(); err != nil {
				return nil, err
			}
			s := string(data)
			if i := bytes.IndexByte(data, 0); i >= 0 {
				s = s[:i]
			}
			if h.Typeflag == typeLongName {
				longName = &s
			} else {
				longLink = &s
			}
			continue
		case 'x', 'g':
			return nil, fmt.Errorf("PAX header (typeflag %q) at offset %d: opkg does not support PAX, write GNU format", h.Typeflag, start)
		case typeReg, typeRegA, typeLink, typeSymlink, typeChar, typeBlock, typeDir, typeFifo:
		default:
			return nil, fmt.Errorf("unsupported typeflag %q at offset %d (%s)", h.Typeflag, start, h.Name)
		}
		if longName != nil {
			h.Name = *longName
		}
		if longLink != nil {
			h.Linkname = *longLink
		}
		if h.Typeflag != typeReg && h.Typeflag != typeRegA && h.Size != 0 {
			return nil, fmt.Errorf("%s: non-regular member with size %d", h.Name, h.Size)
		}
		if h.Name == "" {
			return nil, fmt.Errorf("member with empty name at offset %d", start)
		}
		t.members++
		return h, nil
	}
}

// Read reads the current member's content.
func (t *tarReader) Read(p []byte) (int, error) {
	if t.remain == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > t.remain {
		p = p[:t.remain]
	}
	n, err := t.r.Read(p)
	t.remain -= int64(n)
	t.offset += int64(n)
	if err == io.EOF && t.remain > 0 {
		return n, fmt.Errorf("tar member truncated: %w", io.ErrUnexpectedEOF)
	}
	if err == io.EOF {
		err = nil
	}
	return n, err
}

// skip discards the rest of the current member and its padding.
func (t *tarReader) skip() error {
	n := t.remain + t.pad
	if n == 0 {
		return nil
	}
	m, err := io.CopyN(io.Discard, t.r, n)
	t.offset += m
	t.remain, t.pad = 0, 0
	if err != nil {
		return fmt.Errorf("tar member truncated: %w", noEOF(err))
	}
	return nil
}

func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

func parseHeader(b *[blockSize]byte) (*tarHeader, error) {
	magic := string(b[257:265])
	if magic[:5] != "ustar" {
		return nil, errors.New("no \"ustar\" magic (not a tar archive, or a pre-POSIX tar opkg cannot read)")
	}
	stored, err := parseNumeric(b[148:156])
	if err != nil {
		return nil, fmt.Errorf("checksum field: %w", err)
	}
	// Sum with the checksum field read as spaces; accept the signed sum
	// too, as GNU tar does for archives from old writers.
	var unsigned, signed int64
	for i, c := range b {
		if i >= 148 && i < 156 {
			c = ' '
		}
		unsigned += int64(c)
		signed += int64(int8(c))
	}
	if stored != unsigned && stored != signed {
		return nil, fmt.Errorf("checksum mismatch (stored %o, computed %o)", stored, unsigned)
	}
	h := &tarHeader{
		Name:     cString(b[0:100]),
		Typeflag: b[156],
		Linkname: cString(b[157:257]),
		Uname:    cString(b[265:297]),
		Gname:    cString(b[297:329]),
		Magic:    magic,
	}
	// The POSIX prefix field only exists in POSIX ustar; GNU headers keep
	// atime/ctime there.
	if magic[:6] == "ustar\x00" {
		if p := cString(b[345:500]); p != "" {
			h.Name = p + "/" + h.Name
		}
	}
	nums := []struct {
		name string
		f    []byte
		dst  *int64
	}{{"mode", b[100:108], &h.Mode}, {"uid", b[108:116], &h.UID}, {"gid", b[116:124], &h.GID},
		{"size", b[124:136], &h.Size}, {"mtime", b[136:148], &h.ModTime}}
	for _, n := range nums {
		v, err := parseNumeric(n.f)
		if err != nil {
			return nil, fmt.Errorf("%s field: %w", n.name, err)
		}
		*n.dst = v
	}
	if h.Size < 0 {
		return nil, fmt.Errorf("negative size %d", h.Size)
	}
	return h, nil
}

// parseNumeric reads an octal field (spaces/NULs around the digits) or a
// GNU base-256 field (high bit of the first byte set).
func parseNumeric(f []byte) (int64, error) {
	if len(f) > 0 && f[0]&0x80 != 0 {
		if f[0]&0x40 != 0 {
			return 0, errors.New("negative base-256 number")
		}
		var v int64
		for i, c := range f {
			if i == 0 {
				c &= 0x7f
			}
			if v > (1<<62)>>8 {
				return 0, errors.New("base-256 number overflows")
			}
			v = v<<8 | int64(c)
		}
		return v, nil
	}
	s := f
	for len(s) > 0 && (s[0] == ' ' || s[0] == 0) {
		s = s[1:]
	}
	end := 0
	for end < len(s) && s[end] >= '0' && s[end] <= '7' {
		end++
	}
	for _, c := range s[end:] {
		if c != ' ' && c != 0 {
			return 0, fmt.Errorf("invalid octal number %q", f)
		}
	}
	if end == 0 {
		return 0, nil
	}
	v, err := strconv.ParseInt(string(s[:end]), 8, 64)
	if err != nil {
		return 0, fmt.Errorf("invalid octal number %q", f)
	}
	return v, nil
}

func cString(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}
