package server

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"
)

// authorized reports whether r carries the token, as
// `Authorization: Bearer <token>` or Flux v1's
// `Authorization: Scope-Probe token=<token>`. With no token configured,
// every request is.
func (s *Server) authorized(r *http.Request) bool {
	if s.tokenHash == nil {
		return true
	}
	given, ok := tokenFrom(r.Header.Get("Authorization"))
	if !ok {
		return false
	}
	// Comparing hashes takes the same time whatever the lengths.
	h := sha256.Sum256([]byte(given))
	return subtle.ConstantTimeCompare(h[:], s.tokenHash) == 1
}

func tokenFrom(header string) (string, bool) {
	scheme, rest, ok := strings.Cut(strings.TrimSpace(header), " ")
	if !ok {
		return "", false
	}
	rest = strings.TrimSpace(rest)
	switch {
	case strings.EqualFold(scheme, "Bearer"):
		return rest, rest != ""
	case strings.EqualFold(scheme, "Scope-Probe"):
		k, v, ok := strings.Cut(rest, "=")
		if !ok || !strings.EqualFold(strings.TrimSpace(k), "token") {
			return "", false
		}
		v = strings.TrimSpace(v)
		return v, v != ""
	}
	return "", false
}
