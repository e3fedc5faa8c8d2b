package engine

import "bytes"

var (
	hostName   = []byte("Host")
	secKeyName = []byte("Sec-WebSocket-Key")
)

// requestWellFormed checks what gobwas's Upgrader lets through but RFC 6455
// 4.2.1 and RFC 9110/9112 refuse: a NUL byte in the header block, a second
// Host, a second Sec-WebSocket-Key, or a Sec-WebSocket-Key that is not the
// base64 encoding of 16 bytes (gobwas checks only its length). It runs
// before the Upgrader, so a refused request never reaches the ticket.
// hdr is the request line and headers up to the blank line. It allocates
// nothing.
func requestWellFormed(hdr []byte) bool {
	if bytes.IndexByte(hdr, 0) >= 0 {
		return false
	}
	i := bytes.IndexByte(hdr, '\n')
	if i < 0 {
		return true // the Upgrader refuses it
	}
	rest := hdr[i+1:]
	hosts, keys := 0, 0
	for len(rest) > 0 {
		line := rest
		if j := bytes.IndexByte(rest, '\n'); j >= 0 {
			line, rest = rest[:j], rest[j+1:]
		} else {
			rest = nil
		}
		// Only lines that start with h or s can name the two headers.
		if len(line) < 5 || (line[0]|0x20 != 'h' && line[0]|0x20 != 's') {
			continue
		}
		colon := bytes.IndexByte(line, ':')
		if colon < 0 {
			continue // malformed: the Upgrader answers
		}
		name := line[:colon]
		switch {
		case len(name) == len(hostName) && bytes.EqualFold(name, hostName):
			hosts++
		case len(name) == len(secKeyName) && bytes.EqualFold(name, secKeyName):
			keys++
			if !validSecKey(bytes.TrimSpace(bytes.TrimSuffix(line[colon+1:], []byte{'\r'}))) {
				return false
			}
		}
	}
	return hosts <= 1 && keys <= 1
}

// validSecKey reports whether k is standard base64 of 16 bytes: 22
// characters of the alphabet and "==".
func validSecKey(k []byte) bool {
	if len(k) != 24 || k[22] != '=' || k[23] != '=' {
		return false
	}
	for _, c := range k[:22] {
		switch {
		case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '+', c == '/':
		default:
			return false
		}
	}
	return true
}
