package api

import (
	"encoding/json"
	"errors"
	"fmt"
)

// ErrorType says whose fault an error is. It decides the HTTP status.
type ErrorType string

const (
	// TypeMissing: the thing named does not exist (404).
	TypeMissing ErrorType = "missing"
	// TypeUser: the request was well-formed but cannot be done as asked,
	// until the user changes something (422).
	TypeUser ErrorType = "user"
	// TypeServer: the request looked fine but fluxd failed (500).
	TypeServer ErrorType = "server"
)

// Error is an error with a type and help text for people. On the wire it
// is Flux v1's error envelope {"type", "help", "error"}; fluxctl prints
// Help. Dependencies of the server return it (or wrap it) to choose the
// status code; an error without one is answered as TypeUser (422), as
// Flux v1 does.
type Error struct {
	Type ErrorType
	// Help is multi-line text for a person: what went wrong and what to do.
	Help string
	// Err is the short message.
	Err error
}

func (e *Error) Error() string {
	if e.Err == nil {
		return string(e.Type) + " error"
	}
	return e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }

type errorJSON struct {
	Type string `json:"type"`
	Help string `json:"help"`
	Err  string `json:"error,omitempty"`
}

// MarshalJSON renders the envelope.
func (e *Error) MarshalJSON() ([]byte, error) {
	var msg string
	if e.Err != nil {
		msg = e.Err.Error()
	}
	return json.Marshal(errorJSON{Type: string(e.Type), Help: e.Help, Err: msg})
}

// UnmarshalJSON reads the envelope. Err stays nil when "error" is empty,
// which is how fluxctl tells an envelope from any other JSON.
func (e *Error) UnmarshalJSON(b []byte) error {
	var w errorJSON
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	e.Type, e.Help, e.Err = ErrorType(w.Type), w.Help, nil
	if w.Err != "" {
		e.Err = errors.New(w.Err)
	}
	return nil
}

// MissingError says that the thing err names does not exist (404).
func MissingError(err error, help string) error {
	return &Error{Type: TypeMissing, Err: err, Help: help}
}

// UserError says the request cannot be done as asked (422).
func UserError(err error, help string) error {
	return &Error{Type: TypeUser, Err: err, Help: help}
}

// ServerError says fluxd itself failed (500).
func ServerError(err error, help string) error {
	return &Error{Type: TypeServer, Err: err, Help: help}
}

// UnknownJob is the error for a job ID that fluxd has no record of, in
// memory or in the job notes.
func UnknownJob(id string) error {
	return MissingError(fmt.Errorf("unknown job %q", id), `Job not found

fluxd keeps the status of recent jobs in memory, and the record of every
job that made a commit in a git note on that commit. This job is in
neither: it may not have made a commit (a dry run, or a change that had
nothing to do), fluxd may have restarted before it finished, or the ID
may be wrong.

It is safe to run the command that started the job again.
`)
}

// UnknownRevision is the error for a ref (a full or abbreviated commit
// SHA) that fluxd cannot find on its branch.
func UnknownRevision(ref string) error {
	return MissingError(fmt.Errorf("unknown revision %q", ref), `Revision not found

fluxd cannot find this commit on the branch it syncs. If it was pushed
just now, fluxd may not have fetched it yet: run 'fluxctl sync', or wait
for the next git poll, and try again. Give a full commit SHA, or at least
its first 7 characters.
`)
}
