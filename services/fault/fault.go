// Package fault carries keymint's domain errors: a code, a safe public message
// for callers, and an internal cause for logs only. The gRPC mapping lives in
// one place (status.go) so every transport answers the same way.
package fault

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Code classifies an error the way a caller should react to it.
type Code int

// Codes, each mapped to one gRPC code (and through grpc-gateway, one HTTP status).
const (
	Internal Code = iota
	InvalidArgument
	NotFound
	AlreadyExists
	Unauthenticated
	PermissionDenied
	ResourceExhausted
	FailedPrecondition
	Unavailable
)

// Error is a domain error. Public is safe to show a caller: it never holds a
// secret or an internal detail. Cause is for logs.
type Error struct {
	Code   Code
	Public string
	Cause  error
	// RetryAfter, when positive, tells the caller how long to wait before
	// trying again: a google.rpc.RetryInfo detail over gRPC, a Retry-After
	// header through the gateway.
	RetryAfter time.Duration
}

// Error returns the public message and, when set, the internal cause; it is
// meant for logs.
func (e *Error) Error() string {
	if e.Cause == nil {
		return e.Public
	}
	return e.Public + ": " + e.Cause.Error()
}

// Unwrap exposes the cause to errors.Is / errors.As.
func (e *Error) Unwrap() error { return e.Cause }

// New returns an error with a code and public message and no cause.
func New(code Code, public string) *Error {
	return &Error{Code: code, Public: public}
}

// Newf is New with a formatted public message. Never format a secret into it.
func Newf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Public: fmt.Sprintf(format, args...)}
}

// Wrap returns an error with a code, a public message and an internal cause.
func Wrap(code Code, cause error, public string) *Error {
	return &Error{Code: code, Public: public, Cause: cause}
}

// Retry returns a copy of e that tells the caller to retry after d.
func (e *Error) Retry(d time.Duration) *Error {
	c := *e
	c.RetryAfter = d
	return &c
}

// StoreRetryAfter is the retry hint of a store failure: a failover or a
// restart takes seconds, and a caller hammering meanwhile helps nobody.
const StoreRetryAfter = time.Second

// CodeOf returns the code of the first *Error in err's chain, Internal if none.
func CodeOf(err error) Code {
	var fe *Error
	if errors.As(err, &fe) {
		return fe.Code
	}
	return Internal
}

// StoreFailure marks an unexpected store error as Unavailable: the store is
// the dependency that fails in practice, and a caller should retry. Context
// errors pass through unchanged.
func StoreFailure(err error, what string) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return Wrap(Unavailable, fmt.Errorf("%s: %w", what, err), "store unavailable, retry shortly").Retry(StoreRetryAfter)
}
