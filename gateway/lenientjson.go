package gateway

// escapeRawControls returns b with every raw newline, carriage return and tab
// inside a JSON string literal replaced by its escape (\n, \r, \t). The
// Upsolver documentation's own curl example sends a description with a raw
// newline in it, which strict JSON refuses; this makes such bodies decodable
// and leaves every other byte alone. Valid JSON comes back unchanged (it
// cannot hold those bytes inside a string), bytes outside strings are never
// touched, and a raw control byte right after a backslash is left as is, so
// the decoder still refuses it. b itself is returned when nothing changes.
func escapeRawControls(b []byte) []byte {
	var out []byte // allocated at the first replacement
	inString, escaped := false, false
	for i, c := range b {
		var esc string
		switch {
		case !inString:
			inString = c == '"'
		case escaped:
			escaped = false
		case c == '\\':
			escaped = true
		case c == '"':
			inString = false
		case c == '\n':
			esc = `\n`
		case c == '\r':
			esc = `\r`
		case c == '\t':
			esc = `\t`
		}
		switch {
		case esc != "":
			if out == nil {
				out = make([]byte, i, len(b)+16)
				copy(out, b[:i])
			}
			out = append(out, esc...)
		case out != nil:
			out = append(out, c)
		}
	}
	if out == nil {
		return b
	}
	return out
}
