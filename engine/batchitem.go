package engine

// parseBatchItem parses one item of a /publish batch. A batch of 1,000 is
// parsed item by item, so a single scan per item matters: the common shape
// (the known keys, strings, true/false, any data) is read by the command
// scanner; anything else (an unknown key, a deep or odd value) goes to
// parsePublish, which decodes it with encoding/json and says what is wrong.
func parseBatchItem(p *cmdParser, item []byte) (publishRequest, string) {
	req, ok := scanPublish(p, item)
	if !ok {
		return parsePublish(item)
	}
	return req, checkPublish(&req)
}

func scanPublish(p *cmdParser, item []byte) (req publishRequest, ok bool) {
	p.buf, p.pos, p.scratch, p.deep = item, 0, p.scratch[:0], false
	defer func() { p.buf = nil }()
	p.ws()
	if !p.eat('{') {
		return req, false
	}
	p.ws()
	if p.eat('}') {
		return req, true
	}
	for {
		p.ws()
		key, ok := p.str()
		if !ok {
			return req, false
		}
		p.ws()
		if !p.eat(':') {
			return req, false
		}
		p.ws()
		switch string(key) {
		case "user":
			s, ok := p.str()
			if !ok {
				return req, false
			}
			req.User = string(s)
		case "channel":
			s, ok := p.str()
			if !ok {
				return req, false
			}
			ch := string(s)
			req.Channel = &ch
		case "idempotency_key":
			s, ok := p.str()
			if !ok {
				return req, false
			}
			k := string(s)
			req.IdempotencyKey = &k
		case "broadcast":
			switch {
			case p.lit("true"):
				req.Broadcast = true
			case p.lit("false"):
				req.Broadcast = false
			default:
				return req, false
			}
		case "data":
			start := p.pos
			if !p.skip() {
				return req, false
			}
			req.Data = item[start:p.pos:p.pos]
		default:
			return req, false
		}
		p.ws()
		if p.eat(',') {
			continue
		}
		if p.eat('}') {
			break
		}
		return req, false
	}
	p.ws()
	return req, p.pos == len(item)
}
