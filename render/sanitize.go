package render

import (
	"fmt"
	"reflect"
	"strings"
	"unicode/utf8"

	"github.com/iptscope/iptscope/parse"
)

// What goes to a terminal comes partly from the host or a bundle: chain
// names, rule comments, container and network names, interface names. A
// crafted one ("web\x1b]0;owned\a", a comment with "\x1b[2J") would make
// the terminal act on it. The text renderers therefore show every
// character a terminal could act on as an escape (`\x1b`, `\u202e`),
// before they add their own colours. JSON needs nothing: encoding/json
// escapes control characters itself.

// unsafeRune reports whether a terminal may act on r: C0 controls except
// tab and newline (the renderers' own layout), DEL, C1 controls (8-bit
// CSI and OSC), and the bidirectional overrides that reorder what is
// shown (the "Trojan Source" characters).
func unsafeRune(r rune) bool {
	switch {
	case r == '\t' || r == '\n':
		return false
	case r < 0x20, r == 0x7f, r >= 0x80 && r <= 0x9f:
		return true
	case r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069, r == 0x2028 || r == 0x2029:
		return true
	}
	return false
}

// needsSanitize reports whether Sanitize would change s.
func needsSanitize(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 && c != '\t' && c != '\n' || c == 0x7f {
			return true
		} else if c < utf8.RuneSelf {
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 || unsafeRune(r) {
			return true
		}
		i += size - 1
	}
	return false
}

// Sanitize returns s with every character a terminal could act on (see
// unsafeRune) and every byte that is not UTF-8 written as a visible Go
// escape; s itself when there is none (no allocation).
func Sanitize(s string) string {
	if !needsSanitize(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case unsafeRune(r) && r < 0x100:
			fmt.Fprintf(&b, `\x%02x`, r)
		case unsafeRune(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

// sanitized returns v, or a copy of it with every exported string inside
// (through pointers, structs, slices, arrays, maps and interfaces)
// passed through Sanitize when any needs it. The input is never changed;
// unexported fields of a copied struct are shared with the original.
func sanitized[T any](v T) T {
	// Why a typed look first: the reflective walk cost 0.24 s on a
	// 100,000-rule dump, 60% of `dump`; the rules are nearly always clean.
	if ts, ok := any(v).([]*parse.Table); ok && !dirtyTables(ts) {
		return v
	}
	rv := reflect.ValueOf(&v).Elem()
	if !dirty(rv, map[uintptr]bool{}) {
		return v
	}
	out := clean(rv, map[uintptr]reflect.Value{})
	return out.Interface().(T)
}

// dirtyTables is dirty for parsed tables, without reflection: every
// exported string of a table, its chains and their rules.
func dirtyTables(ts []*parse.Table) bool {
	neg := func(ns ...parse.Negatable) bool {
		for _, n := range ns {
			if needsSanitize(n.Value) {
				return true
			}
		}
		return false
	}
	opts := func(os []parse.Option) bool {
		for _, o := range os {
			if needsSanitize(o.Name) {
				return true
			}
			for _, v := range o.Values {
				if needsSanitize(v) {
					return true
				}
			}
		}
		return false
	}
	for _, t := range ts {
		if t == nil {
			continue
		}
		if needsSanitize(string(t.Name)) {
			return true
		}
		for _, c := range t.Chains {
			if c == nil {
				continue
			}
			if needsSanitize(string(c.Name)) || needsSanitize(string(c.Policy)) {
				return true
			}
			for _, r := range c.Rules {
				if r == nil {
					continue
				}
				if needsSanitize(r.Raw) || needsSanitize(string(r.Table)) || needsSanitize(string(r.Chain)) || needsSanitize(string(r.Target)) ||
					neg(r.Protocol, r.Source, r.Destination, r.InIface, r.OutIface, r.Fragment) || opts(r.TargetOptions) {
					return true
				}
				for _, m := range r.Matches {
					if needsSanitize(m.Name) || opts(m.Options) {
						return true
					}
				}
				for _, u := range r.Unparsed {
					if needsSanitize(u) {
						return true
					}
				}
			}
		}
	}
	return false
}

// dirty reports whether a string reachable from v needs sanitising.
func dirty(v reflect.Value, seen map[uintptr]bool) bool {
	switch v.Kind() {
	case reflect.String:
		return needsSanitize(v.String())
	case reflect.Pointer:
		if v.IsNil() || seen[v.Pointer()] {
			return false
		}
		seen[v.Pointer()] = true
		return dirty(v.Elem(), seen)
	case reflect.Interface:
		return !v.IsNil() && dirty(v.Elem(), seen)
	case reflect.Struct:
		t := v.Type()
		for i := 0; i < v.NumField(); i++ {
			if t.Field(i).IsExported() && dirty(v.Field(i), seen) {
				return true
			}
		}
	case reflect.Slice, reflect.Array:
		if v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.Uint8 {
			return false // bytes are data, not text
		}
		for i := 0; i < v.Len(); i++ {
			if dirty(v.Index(i), seen) {
				return true
			}
		}
	case reflect.Map:
		it := v.MapRange()
		for it.Next() {
			if dirty(it.Key(), seen) || dirty(it.Value(), seen) {
				return true
			}
		}
	}
	return false
}

// clean is the sanitised deep copy of v (memo keeps shared pointers
// shared and ends cycles).
func clean(v reflect.Value, memo map[uintptr]reflect.Value) reflect.Value {
	switch v.Kind() {
	case reflect.String:
		out := reflect.New(v.Type()).Elem()
		out.SetString(Sanitize(v.String()))
		return out
	case reflect.Pointer:
		if v.IsNil() {
			return v
		}
		if c, ok := memo[v.Pointer()]; ok {
			return c
		}
		p := reflect.New(v.Type().Elem())
		memo[v.Pointer()] = p
		p.Elem().Set(clean(v.Elem(), memo))
		return p
	case reflect.Interface:
		if v.IsNil() {
			return v
		}
		out := reflect.New(v.Type()).Elem()
		out.Set(clean(v.Elem(), memo))
		return out
	case reflect.Struct:
		out := reflect.New(v.Type()).Elem()
		out.Set(v) // unexported fields as they are
		t := v.Type()
		for i := 0; i < v.NumField(); i++ {
			if t.Field(i).IsExported() {
				out.Field(i).Set(clean(v.Field(i), memo))
			}
		}
		return out
	case reflect.Slice:
		if v.IsNil() || v.Type().Elem().Kind() == reflect.Uint8 {
			return v
		}
		out := reflect.MakeSlice(v.Type(), v.Len(), v.Len())
		for i := 0; i < v.Len(); i++ {
			out.Index(i).Set(clean(v.Index(i), memo))
		}
		return out
	case reflect.Array:
		out := reflect.New(v.Type()).Elem()
		for i := 0; i < v.Len(); i++ {
			out.Index(i).Set(clean(v.Index(i), memo))
		}
		return out
	case reflect.Map:
		if v.IsNil() {
			return v
		}
		out := reflect.MakeMapWithSize(v.Type(), v.Len())
		it := v.MapRange()
		for it.Next() {
			out.SetMapIndex(clean(it.Key(), memo), clean(it.Value(), memo))
		}
		return out
	}
	return v
}
