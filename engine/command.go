package engine

import (
	"unicode/utf16"
	"unicode/utf8"
)

// cmdType is a client command's "type".
type cmdType uint8

const (
	cmdUnknown cmdType = iota
	cmdSubscribe
	cmdUnsubscribe
	cmdPing
	cmdRefresh
	numCmdTypes
)

var cmdNames = [numCmdTypes]string{"unknown", "subscribe", "unsubscribe", "ping", "refresh"}

// String is the metric label of the command type.
func (t cmdType) String() string {
	if t < numCmdTypes {
		return cmdNames[t]
	}
	return "unknown"
}

// command is one parsed client command. Its byte slices point into the
// message or the parser's scratch: valid only until the next parse.
type command struct {
	typ      cmdType
	id       cmdID
	channel  []byte
	hasChan  bool
	since    bool
	sinceOff uint64
	epoch    []byte
	ticket   []byte
	hasTkt   bool
}

// Limits of a command's fields. An id is a JSON number a JavaScript client
// can hold exactly; an epoch is opaque but server-made and short, so a
// longer one can never match and is refused outright.
const (
	maxCmdID      = 1<<53 - 1
	maxEpochBytes = 256
	maxCmdDepth   = 32
)

// Reasons for refusing a command; constants, so refusing allocates nothing.
const (
	reasonNotJSON     = "not a JSON object"
	reasonBadID       = `"id" must be an integer from 0 to 9007199254740991`
	reasonBadType     = `"type" must be one of subscribe, unsubscribe, ping, refresh`
	reasonNoType      = `missing "type"`
	reasonBadChannel  = `"channel" must be a string`
	reasonBadSince    = `"since" must be {"offset":<integer ≥ 0>,"epoch":"<string>"}`
	reasonBadOffset   = `"since.offset" must be an integer from 0 to 18446744073709551615`
	reasonLongEpoch   = `"since.epoch" is longer than 256 bytes`
	reasonBadTicket   = `"ticket" must be a string`
	reasonTooDeep     = "JSON nested too deeply"
	reasonBinary      = "commands are JSON text frames, not binary"
	reasonNoChannel   = `missing "channel"`
	reasonNoTicket    = `missing "ticket"`
	reasonBadName     = "bad channel name: 1 to 200 bytes of A-Z a-z 0-9 _ - . : @ /, or #<your user>"
	reasonForbidden   = "channel not allowed by the token's channels claim"
	reasonOtherUser   = "a personal channel belongs to its user alone"
	reasonTooMany     = "too many channels on this connection"
	reasonPersonal    = "the personal channel stays subscribed for the connection's life"
	reasonRefreshBad  = "ticket is unknown, used, expired or of another user"
	reasonUnavailable = "broker unavailable, retry later"
)

// cmdParser parses commands with a hand-written scanner: no reflection, and
// no allocation once its scratch (for strings with escapes) has grown.
type cmdParser struct {
	buf     []byte // the message
	pos     int
	scratch []byte
	deep    bool // nesting passed maxCmdDepth
}

// parseCommand parses msg (valid UTF-8: it came in a text frame). On
// failure it returns a non-empty reason; cmd.id holds the id if it was read
// before the failure.
func (p *cmdParser) parseCommand(msg []byte) (cmd command, reason string) {
	cmd, reason = p.parse(msg)
	if reason == reasonNotJSON && p.deep {
		reason = reasonTooDeep
	}
	p.buf = nil
	return cmd, reason
}

func (p *cmdParser) parse(msg []byte) (cmd command, reason string) {
	p.buf, p.pos, p.scratch, p.deep = msg, 0, p.scratch[:0], false
	p.ws()
	if !p.eat('{') {
		return cmd, reasonNotJSON
	}
	p.ws()
	if p.eat('}') {
		return cmd, p.finish(&cmd)
	}
	var fieldErr string
	for {
		p.ws()
		key, ok := p.str()
		if !ok {
			return cmd, reasonNotJSON
		}
		p.ws()
		if !p.eat(':') {
			return cmd, reasonNotJSON
		}
		p.ws()
		if r := p.field(&cmd, key); r != "" {
			if !continuable(r) {
				return cmd, r
			}
			// The value was read whole: go on, so that an id after it is
			// still echoed in the error.
			if fieldErr == "" {
				fieldErr = r
			}
		}
		p.ws()
		if p.eat(',') {
			continue
		}
		if p.eat('}') {
			break
		}
		return cmd, reasonNotJSON
	}
	p.ws()
	if p.pos != len(p.buf) {
		return cmd, reasonNotJSON
	}
	if fieldErr != "" {
		return cmd, fieldErr
	}
	return cmd, p.finish(&cmd)
}

// continuable reports whether a field's error left the scanner after the
// whole value, so the object can be read on.
func continuable(reason string) bool {
	switch reason {
	case reasonBadType, reasonBadID, reasonBadChannel, reasonBadTicket:
		return true
	}
	return false
}

// finish checks what a command type needs once the object is read.
func (p *cmdParser) finish(cmd *command) string {
	switch cmd.typ {
	case cmdUnknown:
		return reasonNoType
	case cmdSubscribe, cmdUnsubscribe:
		if !cmd.hasChan {
			return reasonNoChannel
		}
	case cmdRefresh:
		if !cmd.hasTkt {
			return reasonNoTicket
		}
	}
	return ""
}

// field reads the value of key into cmd; unknown keys are skipped, so that
// newer clients can talk to older servers.
func (p *cmdParser) field(cmd *command, key []byte) string {
	switch string(key) {
	case "type":
		s, ok := p.str()
		if !ok {
			return p.typeMismatch(reasonBadType)
		}
		switch string(s) {
		case "subscribe":
			cmd.typ = cmdSubscribe
		case "unsubscribe":
			cmd.typ = cmdUnsubscribe
		case "ping":
			cmd.typ = cmdPing
		case "refresh":
			cmd.typ = cmdRefresh
		default:
			return reasonBadType
		}
	case "id":
		n, ok := p.uint()
		switch {
		case !ok:
			cmd.id = cmdID{}
			return p.typeMismatch(reasonBadID)
		case n > maxCmdID:
			cmd.id = cmdID{}
			return reasonBadID
		}
		cmd.id = cmdID{n: n, ok: true}
	case "channel":
		s, ok := p.str()
		if !ok {
			return p.typeMismatch(reasonBadChannel)
		}
		cmd.channel, cmd.hasChan = s, true
	case "ticket":
		s, ok := p.str()
		if !ok {
			return p.typeMismatch(reasonBadTicket)
		}
		cmd.ticket, cmd.hasTkt = s, true
	case "since":
		if p.lit("null") {
			cmd.since = false
			return ""
		}
		return p.since(cmd)
	default:
		if !p.skip() {
			return reasonNotJSON
		}
	}
	return ""
}

// typeMismatch returns reason if the value at pos is valid JSON of another
// type, and the not-JSON reason if it is not JSON at all.
func (p *cmdParser) typeMismatch(reason string) string {
	if !p.skip() {
		return reasonNotJSON
	}
	return reason
}

func (p *cmdParser) since(cmd *command) string {
	if !p.eat('{') {
		return p.typeMismatch(reasonBadSince)
	}
	var haveOff, haveEpoch bool
	p.ws()
	if !p.eat('}') {
		for {
			p.ws()
			key, ok := p.str()
			if !ok {
				return reasonNotJSON
			}
			p.ws()
			if !p.eat(':') {
				return reasonNotJSON
			}
			p.ws()
			switch string(key) {
			case "offset":
				n, ok := p.uint()
				if !ok {
					return p.typeMismatch(reasonBadOffset)
				}
				cmd.sinceOff, haveOff = n, true
			case "epoch":
				s, ok := p.str()
				if !ok {
					return p.typeMismatch(reasonBadSince)
				}
				if len(s) > maxEpochBytes {
					return reasonLongEpoch
				}
				cmd.epoch, haveEpoch = s, true
			default:
				if !p.skip() {
					return reasonNotJSON
				}
			}
			p.ws()
			if p.eat(',') {
				continue
			}
			if p.eat('}') {
				break
			}
			return reasonNotJSON
		}
	}
	if !haveOff || !haveEpoch {
		return reasonBadSince
	}
	cmd.since = true
	return ""
}

func (p *cmdParser) ws() {
	for p.pos < len(p.buf) {
		switch p.buf[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

func (p *cmdParser) eat(c byte) bool {
	if p.pos < len(p.buf) && p.buf[p.pos] == c {
		p.pos++
		return true
	}
	return false
}

func (p *cmdParser) lit(s string) bool {
	if len(p.buf)-p.pos >= len(s) && string(p.buf[p.pos:p.pos+len(s)]) == s {
		p.pos += len(s)
		return true
	}
	return false
}

// uint reads a JSON number that is a non-negative integer fitting uint64:
// no sign, fraction or exponent. It does not move on failure.
func (p *cmdParser) uint() (uint64, bool) {
	i := p.pos
	if i >= len(p.buf) || p.buf[i] < '0' || p.buf[i] > '9' {
		return 0, false
	}
	if p.buf[i] == '0' && i+1 < len(p.buf) && p.buf[i+1] >= '0' && p.buf[i+1] <= '9' {
		return 0, false // leading zero: not JSON
	}
	var n uint64
	for ; i < len(p.buf) && p.buf[i] >= '0' && p.buf[i] <= '9'; i++ {
		d := uint64(p.buf[i] - '0')
		if n > (1<<64-1-d)/10 {
			return 0, false
		}
		n = n*10 + d
	}
	if i < len(p.buf) && (p.buf[i] == '.' || p.buf[i] == 'e' || p.buf[i] == 'E') {
		return 0, false
	}
	p.pos = i
	return n, true
}

// str reads a JSON string and returns its decoded bytes: a slice of the
// message when it has no escapes, else of the scratch. It does not move on
// failure when the value is not a string at all.
func (p *cmdParser) str() ([]byte, bool) {
	if p.pos >= len(p.buf) || p.buf[p.pos] != '"' {
		return nil, false
	}
	start := p.pos + 1
	for i := start; i < len(p.buf); i++ {
		switch c := p.buf[i]; {
		case c == '"':
			p.pos = i + 1
			return p.buf[start:i], true
		case c == '\\':
			return p.strEscaped(start, i)
		case c < 0x20:
			return nil, false
		}
	}
	return nil, false
}

func (p *cmdParser) strEscaped(start, i int) ([]byte, bool) {
	from := len(p.scratch)
	p.scratch = append(p.scratch, p.buf[start:i]...)
	for i < len(p.buf) {
		c := p.buf[i]
		switch {
		case c == '"':
			p.pos = i + 1
			return p.scratch[from:len(p.scratch):len(p.scratch)], true
		case c < 0x20:
			return nil, false
		case c != '\\':
			p.scratch = append(p.scratch, c)
			i++
			continue
		}
		if i+1 >= len(p.buf) {
			return nil, false
		}
		i++
		switch p.buf[i] {
		case '"', '\\', '/':
			p.scratch = append(p.scratch, p.buf[i])
		case 'b':
			p.scratch = append(p.scratch, '\b')
		case 'f':
			p.scratch = append(p.scratch, '\f')
		case 'n':
			p.scratch = append(p.scratch, '\n')
		case 'r':
			p.scratch = append(p.scratch, '\r')
		case 't':
			p.scratch = append(p.scratch, '\t')
		case 'u':
			r, ok := cmdHex4(p.buf, i+1)
			if !ok {
				return nil, false
			}
			i += 4
			if utf16.IsSurrogate(r) {
				r2, ok := rune(0), false
				if i+6 < len(p.buf) && p.buf[i+1] == '\\' && p.buf[i+2] == 'u' {
					r2, ok = cmdHex4(p.buf, i+3)
				}
				if ok {
					if d := utf16.DecodeRune(r, r2); d != utf8.RuneError {
						r = d
						i += 6
					} else {
						r = utf8.RuneError
					}
				} else {
					r = utf8.RuneError
				}
			}
			p.scratch = utf8.AppendRune(p.scratch, r)
		default:
			return nil, false
		}
		i++
	}
	return nil, false
}

func cmdHex4(b []byte, i int) (rune, bool) {
	if i+4 > len(b) {
		return 0, false
	}
	var r rune
	for _, c := range b[i : i+4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}

// skip moves over one JSON value of any type, iteratively (nesting is
// bounded by maxCmdDepth, so a hostile message cannot exhaust the stack).
func (p *cmdParser) skip() bool {
	var objects uint64 // bit d: the container at depth d+1 is an object
	depth := 0
value:
	for {
		p.ws()
		if p.pos >= len(p.buf) {
			return false
		}
		switch c := p.buf[p.pos]; {
		case c == '{' || c == '[':
			if depth == maxCmdDepth {
				p.deep = true
				return false
			}
			p.pos++
			closer := byte(']')
			if c == '{' {
				objects |= 1 << depth
				closer = '}'
			} else {
				objects &^= 1 << depth
			}
			depth++
			p.ws()
			if p.eat(closer) {
				depth--
				break
			}
			if c == '{' && !p.skipKey() {
				return false
			}
			continue value
		case c == '"':
			if _, ok := p.str(); !ok {
				return false
			}
		case c == '-' || c >= '0' && c <= '9':
			if !p.number() {
				return false
			}
		case p.lit("true"), p.lit("false"), p.lit("null"):
		default:
			return false
		}
		// After a value: close containers or move to the next element.
		for depth > 0 {
			p.ws()
			obj := objects>>(depth-1)&1 == 1
			if p.eat(',') {
				if obj && !p.skipKey() {
					return false
				}
				continue value
			}
			if obj && p.eat('}') || !obj && p.eat(']') {
				depth--
				continue
			}
			return false
		}
		return true
	}
}

func (p *cmdParser) skipKey() bool {
	p.ws()
	if _, ok := p.str(); !ok {
		return false
	}
	p.ws()
	return p.eat(':')
}

// number moves over a JSON number.
func (p *cmdParser) number() bool {
	i := p.pos
	if i < len(p.buf) && p.buf[i] == '-' {
		i++
	}
	if i+1 < len(p.buf) && p.buf[i] == '0' && p.buf[i+1] >= '0' && p.buf[i+1] <= '9' {
		return false // leading zero
	}
	digits := func() bool {
		s := i
		for i < len(p.buf) && p.buf[i] >= '0' && p.buf[i] <= '9' {
			i++
		}
		return i > s
	}
	if !digits() {
		return false
	}
	if i < len(p.buf) && p.buf[i] == '.' {
		i++
		if !digits() {
			return false
		}
	}
	if i < len(p.buf) && (p.buf[i] == 'e' || p.buf[i] == 'E') {
		i++
		if i < len(p.buf) && (p.buf[i] == '+' || p.buf[i] == '-') {
			i++
		}
		if !digits() {
			return false
		}
	}
	p.pos = i
	return true
}
