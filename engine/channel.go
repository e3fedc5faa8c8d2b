package engine

import "strings"

// MaxChannelBytes is the longest channel name (DESIGN 1.4); the personal
// channel "#<user>" is the one name allowed outside the alphabet and length.
const MaxChannelBytes = 200

// DefaultMaxChannelsPerConn is -max-channels-per-conn's default.
const DefaultMaxChannelsPerConn = 128

// PersonalChannel is user's personal channel, "#<user>".
func PersonalChannel(user string) string { return "#" + user }

// ValidChannel reports whether name is a channel name of the alphabet
// A–Z a–z 0–9 _ - . : @ / and 1 to MaxChannelBytes long. Personal channels
// ("#…") are not: they are checked against the connection's user instead.
// Safe from any goroutine.
func ValidChannel[T string | []byte](name T) bool {
	if len(name) == 0 || len(name) > MaxChannelBytes {
		return false
	}
	for i := 0; i < len(name); i++ {
		if !channelByte[name[i]] {
			return false
		}
	}
	return true
}

var channelByte = func() (t [256]bool) {
	for c := 'A'; c <= 'Z'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for _, c := range "_-.:@/" {
		t[c] = true
	}
	return t
}()

// ValidGrant reports whether g is a grant pattern of the channels claim:
// a channel name, a prefix ending in "*" (the prefix itself of the
// alphabet, possibly empty: "*" grants every name). Safe from any goroutine.
func ValidGrant(g string) bool {
	if p, ok := strings.CutSuffix(g, "*"); ok {
		return p == "" || ValidChannel(p)
	}
	return ValidChannel(g)
}

// granted reports whether a grant list opens channel (a name of the
// alphabet; personal channels never go through grants). Grants that are
// not valid patterns open nothing.
func granted(grants []string, channel []byte) bool {
	for _, g := range grants {
		if p, ok := strings.CutSuffix(g, "*"); ok {
			if len(channel) >= len(p) && string(channel[:len(p)]) == p && (p == "" || ValidChannel(p)) {
				return true
			}
		} else if g == string(channel) {
			return true
		}
	}
	return false
}
