package main

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/alecthomas/kong"

	"github.com/keymint/keymint/services/server"
)

// maxUnknownFlags bounds how many unknown flags one run reports.
const maxUnknownFlags = 16

// parse parses args and reports every problem at once, one line each:
// unknown flags, values that do not parse (flags and environment
// variables alike), and the command's Validate. kong stops at the first
// problem, so an unknown flag is noted and dropped and the rest parsed
// again, and values are decoded by mappers that note their errors rather
// than stop (valueProblems).
func parse(parser *kong.Kong, args []string, values *valueProblems) (*kong.Context, error) {
	var problems server.Problems
	for range maxUnknownFlags {
		values.lines = nil
		kctx, err := parser.Parse(args)
		flag, unknown := unknownFlag(err)
		if !unknown {
			problems = append(problems, values.lines...)
			var p server.Problems
			switch {
			case errors.As(err, &p):
				problems = append(problems, p...)
			case err != nil:
				problems = append(problems, err.Error())
			}
			if len(problems) > 0 {
				return nil, problems
			}
			return kctx, nil
		}
		problems = append(problems, err.Error())
		args = slices.DeleteFunc(args, func(a string) bool { return a == flag || strings.HasPrefix(a, flag+"=") })
	}
	return nil, problems
}

// unknownFlag is the flag of kong's "unknown flag --x" error.
func unknownFlag(err error) (string, bool) {
	if err == nil {
		return "", false
	}
	rest, ok := strings.CutPrefix(err.Error(), "unknown flag ")
	if !ok {
		return "", false
	}
	flag, _, _ := strings.Cut(rest, ",")
	return flag, true
}

// valueProblems collects the values that did not decode. The value keeps
// its default, so Validate does not report it a second time.
type valueProblems struct{ lines []string }

// mappers replaces kong's mappers of the types keymint's flags use with
// ones that note a bad value and go on.
func (v *valueProblems) mappers() kong.Option {
	defaults := kong.NewRegistry().RegisterDefaults()
	var opts []kong.Option
	for _, t := range []reflect.Type{reflect.TypeFor[time.Duration](), reflect.TypeFor[uint](), reflect.TypeFor[int]()} {
		opts = append(opts, kong.TypeMapper(t, noting{next: defaults.ForType(t), problems: v}))
	}
	opts = append(opts, kong.TypeMapper(reflect.TypeFor[bool](), notingBool{noting{next: defaults.ForType(reflect.TypeFor[bool]()), problems: v}}))
	return kong.OptionFunc(func(k *kong.Kong) error {
		for _, o := range opts {
			if err := o.Apply(k); err != nil {
				return err
			}
		}
		return nil
	})
}

type noting struct {
	next     kong.Mapper
	problems *valueProblems
}

func (n noting) Decode(ctx *kong.DecodeContext, target reflect.Value) error {
	if err := n.next.Decode(ctx, target); err != nil {
		name := "--" + ctx.Value.Name
		if len(ctx.Value.Tag.Envs) > 0 {
			name += " (" + strings.Join(ctx.Value.Tag.Envs, ", ") + ")"
		}
		// kong may decode an environment value more than once.
		if line := fmt.Sprintf("%s: %v", name, err); !slices.Contains(n.problems.lines, line) {
			n.problems.lines = append(n.problems.lines, line)
		}
		if ctx.Value.HasDefault {
			// kong decodes a flag into a fresh value: put the default there.
			def := kong.ScanFromTokens(kong.Token{Type: kong.FlagValueToken, Value: ctx.Value.Default})
			_ = n.next.Decode(ctx.WithScanner(def), target)
		}
	}
	return nil
}

// notingBool keeps bool flags taking no value.
type notingBool struct{ noting }

func (notingBool) IsBool() bool { return true }
