package subject

// ValidSubscribe reports whether subject is a valid subscription filter:
// non-empty tokens, no whitespace, and ">" only as the last token. It is
// nats-server's IsValidSubject.
//
// The validators take a string or a byte slice, so the parser can check
// wire bytes without converting them first.
func ValidSubscribe[S ~string | ~[]byte](subject S) bool {
	ok, _ := scan(subject)
	return ok
}

// ValidPublish reports whether subject is a valid literal subject to
// publish on: valid as a filter and without wildcard tokens. It is
// nats-server's IsValidPublishSubject. nats-server itself does not refuse
// publishes that fail it (the package doc says how they match); refusing
// them is the server's choice, but the uplink must not forward subjects
// with empty tokens.
func ValidPublish[S ~string | ~[]byte](subject S) bool {
	ok, wild := scan(subject)
	return ok && !wild
}

// ValidQueue reports whether name is a valid queue group name: non-empty
// and free of the bytes that separate protocol arguments (space, \t, \r,
// \n). Anything else, dots and "*" included, is an opaque name compared
// byte for byte, exactly as nats-server and nats.go treat it.
func ValidQueue[S ~string | ~[]byte](name S) bool {
	if len(name) == 0 {
		return false
	}
	for i := 0; i < len(name); i++ {
		switch name[i] {
		case ' ', '\t', '\r', '\n':
			return false
		}
	}
	return true
}

// HasWildcard reports whether subject has a "*" or ">" token. It does not
// check validity.
func HasWildcard[S ~string | ~[]byte](subject S) bool {
	start := 0
	for i := 0; i <= len(subject); i++ {
		if i < len(subject) && subject[i] != '.' {
			continue
		}
		if i-start == 1 && (subject[start] == '*' || subject[start] == '>') {
			return true
		}
		start = i + 1
	}
	return false
}

// scan checks subject in one pass and reports whether it is a valid filter
// and whether it has wildcard tokens.
func scan[S ~string | ~[]byte](subject S) (valid, wild bool) {
	if len(subject) == 0 {
		return false, false
	}
	start := 0
	afterFull := false
	for i := 0; i <= len(subject); i++ {
		if i < len(subject) {
			switch subject[i] {
			case ' ', '\t', '\n', '\r', '\f':
				return false, false
			case '.':
			default:
				continue
			}
		}
		// subject[start:i] is a complete token.
		if i == start || afterFull {
			return false, false
		}
		if i-start == 1 {
			switch subject[start] {
			case '*':
				wild = true
			case '>':
				wild, afterFull = true, true
			}
		}
		start = i + 1
	}
	return true, wild
}
