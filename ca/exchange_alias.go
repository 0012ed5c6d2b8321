package ca

import "github.com/meshnode/meshnode/ca/exchange"

// The request and issued-file formats live in ca/exchange, which routers
// import without the CA's key handling; these names keep the CA's own code
// and its callers reading naturally.

// Request is a signing request (see exchange.Request).
type Request = exchange.Request

// Files of an issued certificate directory.
const (
	IssuedCert        = exchange.IssuedCert
	IssuedCA          = exchange.IssuedCA
	IssuedLighthouses = exchange.IssuedLighthouses
	RequestMagic      = exchange.RequestMagic
	MaxGroups         = exchange.MaxGroups
)

// Roles a node can be enrolled with.
var Roles = exchange.Roles

// ParseRequest reads a signing request.
func ParseRequest(data []byte) (*Request, error) { return exchange.ParseRequest(data) }

// ValidName checks a node name.
func ValidName(s string) error { return exchange.ValidName(s) }

// ParseBlocklist reads a blocklist.
func ParseBlocklist(data []byte) ([]string, error) { return exchange.ParseBlocklist(data) }

// KeyFingerprint is the fingerprint of a node's public key.
func KeyFingerprint(pub []byte) string { return exchange.KeyFingerprint(pub) }

func isHex64(s string) bool { return exchange.IsHex64(s) }

func clip(s string) string { return exchange.Clip(s) }
