package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/fluxd/fluxd/server/api"
)

// httpError is an error the server itself answers with a fixed status: a
// bad request, a missing route, a deprecated version, no or a wrong token,
// a body too big, a capability not wired yet. Errors from dependencies
// are classified by their *api.Error instead.
type httpError struct {
	code int
	// env is the envelope sent; nil for a 400, whose body is not one.
	env *api.Error
	// msg is the short message of a 400.
	msg string
}

func (e *httpError) Error() string {
	if e.env != nil {
		return e.env.Error()
	}
	return e.msg
}

func (e *httpError) Unwrap() error {
	if e.env != nil {
		return e.env
	}
	return nil
}

// badRequest is a 400: a body that does not decode, an invalid ID or
// value in the query. As in Flux v1 the body is not the envelope, so
// fluxctl prints the status line and the body.
func badRequest(format string, args ...any) error {
	return &httpError{code: http.StatusBadRequest, msg: fmt.Sprintf(format, args...)}
}

func routeNotFound(path string) error {
	return &httpError{code: http.StatusNotFound, env: &api.Error{
		Type: api.TypeMissing,
		Err:  errors.New("API endpoint not found"),
		Help: `The API endpoint requested is not supported by this fluxd.

Your client (fluxctl) is probably out of date, newer than this fluxd, or
calling the wrong URL. Check that --url ends in /api/flux, and upgrade
fluxctl or fluxd so that their versions match.

The path requested was:

    ` + path + `
`,
	}}
}

var errDeprecated = &httpError{code: http.StatusGone, env: &api.Error{
	Type: api.TypeMissing,
	Err:  errors.New("API endpoint deprecated"),
	Help: `The API endpoint requested has been deprecated.

Your client (fluxctl) is too old for this fluxd: upgrade it.
`,
}}

var errUnauthorized = &httpError{code: http.StatusUnauthorized, env: &api.Error{
	Type: api.TypeUser,
	Err:  errors.New("request failed authentication"),
	Help: `The request failed authentication.

fluxd requires an API token, and the request carried none or a wrong one.
Pass the token fluxd was started with: fluxctl --token <token>, or the
environment variable FLUX_TOKEN (Flux v1's fluxctl: --token or
FLUX_SERVICE_TOKEN).
`,
}}

func bodyTooLarge(limit int64) error {
	return &httpError{code: http.StatusRequestEntityTooLarge, env: &api.Error{
		Type: api.TypeUser,
		Err:  fmt.Errorf("request body larger than %d bytes", limit),
		Help: "The request body is larger than fluxd accepts (" + strconv.FormatInt(limit, 10) + ` bytes).

Split the change into smaller requests.
`,
	}}
}

// notAvailable answers a route whose dependency is not wired.
func notAvailable(what string) error {
	return &httpError{code: http.StatusNotImplemented, env: &api.Error{
		Type: api.TypeServer,
		Err:  fmt.Errorf("%s: not available in this fluxd yet", what),
		Help: "This fluxd cannot " + what + ` yet: the capability is not built into
this version. Upgrade fluxd, or use the route's Flux v1 equivalent if
there is one.
`,
	}}
}

func internalError(err error) error {
	return &httpError{code: http.StatusInternalServerError, env: &api.Error{
		Type: api.TypeServer,
		Err:  err,
		Help: "fluxd failed to answer: " + err.Error() + `

This is a bug in fluxd. The fluxd logs have the details.
`,
	}}
}

// userError makes a 422 of a request that is well-formed but asks for
// something that cannot be done.
func userError(err error) error {
	return api.UserError(err, "Error: "+err.Error()+"\n")
}

// classify maps an error to a status and a body, in one place: the
// server's own errors carry their status, a dependency's *api.Error maps
// by type, and anything else is a user error (422), as in Flux v1.
func classify(err error) (code int, env *api.Error, msg string) {
	var he *httpError
	if errors.As(err, &he) {
		return he.code, withHelp(he.env), he.msg
	}
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return classify(bodyTooLarge(mbe.Limit))
	}
	var ae *api.Error
	if errors.As(err, &ae) {
		// Keep the type and help, but report the whole message chain.
		env = &api.Error{Type: ae.Type, Help: ae.Help, Err: err}
		switch ae.Type {
		case api.TypeMissing:
			code = http.StatusNotFound
		case api.TypeUser:
			code = http.StatusUnprocessableEntity
		default:
			env.Type, code = api.TypeServer, http.StatusInternalServerError
		}
		return code, withHelp(env), ""
	}
	return http.StatusUnprocessableEntity, &api.Error{
		Type: api.TypeUser,
		Err:  err,
		Help: "Error: " + err.Error() + `

fluxd has no more specific help for this error. The fluxd logs may say
more about it.
`,
	}, ""
}

// withHelp makes sure an envelope has help text: fluxctl prints only the
// help.
func withHelp(e *api.Error) *api.Error {
	if e == nil || e.Help != "" {
		return e
	}
	c := *e
	c.Help = "Error: " + e.Error() + "\n"
	return &c
}

// writeError answers err. The Accept header chooses the body, as in Flux
// v1: application/json gets the envelope, text/plain only the help, and
// anything else or no Accept only the short message as text.
func writeError(w http.ResponseWriter, r *http.Request, err error) int {
	code, env, msg := classify(err)
	h := w.Header()
	if code == http.StatusUnauthorized {
		h.Set("WWW-Authenticate", `Bearer realm="fluxd"`)
	}
	h.Set("X-Content-Type-Options", "nosniff")
	short := msg
	if env != nil {
		short = env.Error()
	}
	var body []byte
	switch negotiate(r.Header.Get("Accept"), "application/json", "text/plain") {
	case "application/json":
		h.Set("Content-Type", jsonContentType)
		var v any = api.BadRequest{Message: msg}
		if env != nil {
			v = env
		}
		var mErr error
		if body, mErr = json.Marshal(v); mErr != nil {
			h.Set("Content-Type", textContentType)
			body = []byte(short)
		}
	case "text/plain":
		h.Set("Content-Type", textContentType)
		if env != nil {
			body = []byte(env.Help)
		} else {
			body = []byte(msg)
		}
	default:
		h.Set("Content-Type", textContentType)
		body = []byte(short)
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(code)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
	return code
}

const (
	jsonContentType = "application/json; charset=utf-8"
	textContentType = "text/plain; charset=utf-8"
)

// negotiate returns the offer the Accept header prefers, or "" when the
// header is empty or accepts none of them. Ties go to the earlier offer.
func negotiate(accept string, offers ...string) string {
	if strings.TrimSpace(accept) == "" {
		return ""
	}
	type rangeQ struct {
		typ, sub string
		q        float64
	}
	var ranges []rangeQ
	for _, part := range strings.Split(accept, ",") {
		fields := strings.Split(part, ";")
		mt := strings.ToLower(strings.TrimSpace(fields[0]))
		typ, sub, ok := strings.Cut(mt, "/")
		if !ok {
			if mt != "*" {
				continue
			}
			typ, sub = "*", "*"
		}
		q := 1.0
		for _, p := range fields[1:] {
			k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
			if strings.EqualFold(strings.TrimSpace(k), "q") {
				f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
				if err != nil || f < 0 || f > 1 {
					f = 0
				}
				q = f
			}
		}
		ranges = append(ranges, rangeQ{typ, sub, q})
	}
	best, bestQ := "", 0.0
	for _, offer := range offers {
		otyp, osub, _ := strings.Cut(offer, "/")
		q, spec := 0.0, -1
		for _, r := range ranges {
			s := -1
			switch {
			case r.typ == otyp && r.sub == osub:
				s = 2
			case r.typ == otyp && r.sub == "*":
				s = 1
			case r.typ == "*" && r.sub == "*":
				s = 0
			}
			if s > spec {
				spec, q = s, r.q
			}
		}
		if spec >= 0 && q > bestQ {
			best, bestQ = offer, q
		}
	}
	return best
}
