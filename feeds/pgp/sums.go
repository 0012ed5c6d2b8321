package pgp

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path"
	"sort"
	"strings"
)

// Sum is one line of a SHA256SUMS file.
type Sum struct {
	Name   string // relative, '/'-separated
	SHA256 string // 64 lowercase hex digits
}

// SHA256Sums formats the hashes of files in coreutils sha256sum format
// ("<hex>  <name>\n"), sorted by name so the output, and hence its signature,
// is reproducible. Names with a backslash, CR or LF are escaped the way
// sha256sum does (leading '\' on the line), which sha256sum -c understands.
func SHA256Sums(files map[string][]byte) []byte {
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	var buf bytes.Buffer
	for _, n := range names {
		sum := sha256.Sum256(files[n])
		writeLine(&buf, hex.EncodeToString(sum[:]), n)
	}
	return buf.Bytes()
}

func writeLine(buf *bytes.Buffer, hash, name string) {
	if strings.ContainsAny(name, "\\\n\r") {
		buf.WriteByte('\\')
		name = strings.NewReplacer(`\`, `\\`, "\n", `\n`, "\r", `\r`).Replace(name)
	}
	buf.WriteString(hash)
	buf.WriteString("  ")
	buf.WriteString(name)
	buf.WriteByte('\n')
}

// ParseSHA256Sums reads a sha256sum-format file. Binary-mode lines
// ("<hex> *<name>") are accepted too. Names must be relative and stay
// inside the directory (no "..", no leading '/'), because a verifier opens
// them. Errors name the line.
func ParseSHA256Sums(data []byte) ([]Sum, error) {
	var sums []Sum
	seen := make(map[string]int)
	text := string(data)
	if text == "" {
		return nil, nil
	}
	if !strings.HasSuffix(text, "\n") {
		text += "\n" // a missing final newline is harmless
	}
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	for i, line := range lines {
		n := i + 1
		s, err := parseSumLine(line)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		if prev, dup := seen[s.Name]; dup {
			return nil, fmt.Errorf("line %d: %q already listed on line %d", n, s.Name, prev)
		}
		seen[s.Name] = n
		sums = append(sums, s)
	}
	return sums, nil
}

func parseSumLine(line string) (Sum, error) {
	escaped := strings.HasPrefix(line, `\`)
	if escaped {
		line = line[1:]
	}
	if len(line) < 64+2+1 {
		return Sum{}, fmt.Errorf("too short for \"<64 hex digits>  <name>\"")
	}
	h := line[:64]
	for _, c := range []byte(h) {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return Sum{}, fmt.Errorf("hash must be 64 lowercase hex digits")
		}
	}
	if sep := line[64:66]; sep != "  " && sep != " *" {
		return Sum{}, fmt.Errorf("hash must be followed by two spaces (or \" *\") and the name")
	}
	name := line[66:]
	if escaped {
		var err error
		if name, err = unescape(name); err != nil {
			return Sum{}, err
		}
	}
	if err := checkName(name); err != nil {
		return Sum{}, err
	}
	return Sum{Name: name, SHA256: h}, nil
}

func unescape(s string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			b.WriteByte(s[i])
			continue
		}
		i++
		if i == len(s) {
			return "", fmt.Errorf("name ends in a lone backslash")
		}
		switch s[i] {
		case '\\':
			b.WriteByte('\\')
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		default:
			return "", fmt.Errorf("unknown escape \\%c in name", s[i])
		}
	}
	return b.String(), nil
}

// checkName keeps names inside the summed directory.
func checkName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("empty name")
	case strings.HasPrefix(name, "/"):
		return fmt.Errorf("name %q is absolute", name)
	case strings.ContainsRune(name, 0):
		return fmt.Errorf("name contains a NUL byte")
	case path.Clean(name) != name:
		return fmt.Errorf("name %q is not clean (want %q)", name, path.Clean(name))
	case name == ".":
		return fmt.Errorf("name %q is the directory itself", name)
	case name == ".." || strings.HasPrefix(name, "../"):
		return fmt.Errorf("name %q leaves the directory", name)
	}
	return nil
}
