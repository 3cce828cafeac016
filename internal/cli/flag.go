package cli

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// Value is a flag's value: pflag's Value interface (which the standard
// flag package's is a subset of), so one table of flags serves the cobra
// command and the guest binary's parser.
type Value interface {
	String() string
	Set(string) error
	Type() string // "bool" for a flag that takes no argument
}

// Flag is one flag of a command line.
type Flag struct {
	Name      string // long name, without the dashes
	Shorthand string // one letter, or ""
	Usage     string
	Value     Value
}

// IsBool reports whether the flag takes no argument (--flag means
// --flag=true, as in pflag).
func (f Flag) IsBool() bool { return f.Value.Type() == "bool" }

// ErrHelp is what Parse returns for -h or --help.
var ErrHelp = errors.New("help requested")

// Parse sets flags from args with pflag's syntax, which cobra commands
// read: --name=value, --name value, -s value, -svalue, -s=value, grouped
// one-letter flags (-os 64K), --bool and --bool=false; "--" ends the flags
// and -h or --help asks for help (ErrHelp). Words that are not flags are
// returned in order. Every other error is a UsageError worded as pflag
// words it.
func Parse(flags []Flag, args []string) (rest []string, err error) {
	long := map[string]*Flag{}
	short := map[byte]*Flag{}
	for i := range flags {
		f := &flags[i]
		long[f.Name] = f
		if f.Shorthand != "" {
			short[f.Shorthand[0]] = f
		}
	}
	set := func(f *Flag, name, v string) error {
		if err := f.Value.Set(v); err != nil {
			return Usagef("invalid argument %q for %q flag: %v", v, name, err)
		}
		return nil
	}
	for len(args) > 0 {
		a := args[0]
		args = args[1:]
		switch {
		case a == "--":
			return append(rest, args...), nil
		case strings.HasPrefix(a, "--"):
			name, v, hasValue := strings.Cut(a[2:], "=")
			if name == "help" && long["help"] == nil {
				return nil, ErrHelp
			}
			f := long[name]
			if f == nil || name == "" {
				return nil, Usagef("unknown flag: --%s", name)
			}
			switch {
			case hasValue:
			case f.IsBool():
				v = "true"
			case len(args) > 0:
				v, args = args[0], args[1:]
			default:
				return nil, Usagef("flag needs an argument: %s", a)
			}
			if err := set(f, flagName(f), v); err != nil {
				return nil, err
			}
		case strings.HasPrefix(a, "-") && len(a) > 1:
			for s := a[1:]; s != ""; {
				c := s[0]
				s = s[1:]
				f := short[c]
				if f == nil {
					if c == 'h' {
						return nil, ErrHelp
					}
					return nil, Usagef("unknown shorthand flag: %q in %s", c, a)
				}
				var v string
				switch {
				case strings.HasPrefix(s, "="):
					v, s = s[1:], ""
				case f.IsBool():
					v = "true"
				case s != "":
					v, s = s, ""
				case len(args) > 0:
					v, args = args[0], args[1:]
				default:
					return nil, Usagef("flag needs an argument: %q in %s", c, a)
				}
				if err := set(f, flagName(f), v); err != nil {
					return nil, err
				}
			}
		default:
			rest = append(rest, a)
		}
	}
	return rest, nil
}

// flagName is how pflag names a flag in its errors: "-s, --pipe-size".
func flagName(f *Flag) string {
	if f.Shorthand != "" {
		return "-" + f.Shorthand + ", --" + f.Name
	}
	return "--" + f.Name
}

// WriteFlags writes the flags' help as pflag lays it out: one line per
// flag, names, value type, usage and the default when it is not the zero
// value.
func WriteFlags(w io.Writer, flags []Flag) error {
	type line struct{ left, right string }
	var lines []line
	width := 0
	for _, f := range append(flags, Flag{Name: "help", Shorthand: "h", Usage: "help", Value: new(boolValue)}) {
		left := "      --" + f.Name
		if f.Shorthand != "" {
			left = "  -" + f.Shorthand + ", --" + f.Name
		}
		if !f.IsBool() {
			left += " " + f.Value.Type()
		}
		right := f.Usage
		if d := f.Value.String(); !zeroDefault(f.Value.Type(), d) {
			if f.Value.Type() == "string" {
				d = strconv.Quote(d)
			}
			right += " (default " + d + ")"
		}
		lines = append(lines, line{left, right})
		width = max(width, len(left))
	}
	for _, l := range lines {
		if _, err := fmt.Fprintf(w, "%-*s   %s\n", width, l.left, strings.ReplaceAll(l.right, "\n", "\n"+strings.Repeat(" ", width+3))); err != nil {
			return err
		}
	}
	return nil
}

func zeroDefault(typ, v string) bool {
	switch typ {
	case "bool":
		return v == "false"
	case "duration":
		return v == "0s"
	case "int", "size":
		return v == "0"
	}
	return v == ""
}

// The plain value types, named as pflag names them (help shows the name).

type boolValue bool

// BoolValue returns p as a flag value that takes no argument.
func BoolValue(p *bool) Value { return (*boolValue)(p) }

func (b *boolValue) Set(s string) error {
	v, err := strconv.ParseBool(s)
	if err != nil {
		return errors.New("want true or false")
	}
	*b = boolValue(v)
	return nil
}
func (b *boolValue) String() string { return strconv.FormatBool(bool(*b)) }
func (b *boolValue) Type() string   { return "bool" }

type stringValue string

// StringValue returns p as a flag value.
func StringValue(p *string) Value { return (*stringValue)(p) }

func (s *stringValue) Set(v string) error { *s = stringValue(v); return nil }
func (s *stringValue) String() string     { return string(*s) }
func (s *stringValue) Type() string       { return "string" }

type intValue int

// IntValue returns p as a flag value.
func IntValue(p *int) Value { return (*intValue)(p) }

func (i *intValue) Set(s string) error {
	v, err := strconv.ParseInt(s, 0, strconv.IntSize)
	if err != nil {
		return errors.New("want a whole number")
	}
	*i = intValue(v)
	return nil
}
func (i *intValue) String() string { return strconv.Itoa(int(*i)) }
func (i *intValue) Type() string   { return "int" }

type durationValue time.Duration

// DurationValue returns p as a flag value in time.ParseDuration's syntax.
func DurationValue(p *time.Duration) Value { return (*durationValue)(p) }

func (d *durationValue) Set(s string) error {
	v, err := time.ParseDuration(s)
	if err != nil {
		return errors.New("want a duration such as 10s or 1m30s")
	}
	*d = durationValue(v)
	return nil
}
func (d *durationValue) String() string { return time.Duration(*d).String() }
func (d *durationValue) Type() string   { return "duration" }
