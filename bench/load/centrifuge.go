package load

import (
	"fmt"
	"slices"

	"github.com/turnstile-push/turnstile/bench/load/cwire"
)

// wireCentrifuge is job.Wire for a server that speaks Centrifuge's JSON
// client protocol (the centrifuge peer) rather than turnstile's.
const wireCentrifuge = "centrifuge"

// wireFor is the client protocol of the named server: "" for turnstile's
// (turnstile and the other peers), wireCentrifuge for the centrifuge peer.
func wireFor(name string) string {
	if server, _ := splitDeflate(name); server == "centrifuge" {
		return wireCentrifuge
	}
	return ""
}

// centrifugeScenarios are the scenarios the load client runs against the
// centrifuge peer. channels needs client-side subscribe commands and
// storm turnstile's /disconnect and history: neither is spoken to it.
var centrifugeScenarios = []string{"connect", "reject", "fanout", "echo", "churn"}

// unsupported says why the named server does not run scenario sc, or "".
func unsupported(name, sc string) string {
	if wireFor(name) == wireCentrifuge && !slices.Contains(centrifugeScenarios, sc) {
		return fmt.Sprintf("the load client speaks only %v to centrifuge", centrifugeScenarios)
	}
	return ""
}

// centrifugeMessage takes one WebSocket message from a centrifuge server:
// one reply or push a line. Pings are answered; the connect reply is the
// welcome; publications and async messages (echoes) go on to onPayload
// as their data alone, as a turnstile message's data would; the bytes on
// the wire are shared out over the lines.
func (w *worker) centrifugeMessage(c *wsconn, op byte, msg []byte, rx received, now int64) {
	cwire.Each(msg, func(l []byte) {
		if c.state == stClosed {
			return // closed by a line before (churn)
		}
		k, _, data := cwire.Parse(l)
		part := rx
		part.wire = rx.wire * (len(l) + 1) / (len(msg) + 1)
		switch {
		case k == cwire.Ping:
			w.eng.send(c, opText, cwire.Pong, now)
		case k == cwire.Error:
			w.res.addError(errCentrifugeReply)
		case !c.welcome:
			if k != cwire.ConnectReply {
				w.res.addError(errNoWelcome)
			}
			w.onPayload(c, op, l, part, now)
		case k == cwire.Publication, k == cwire.Message:
			w.onPayload(c, op, data, part, now)
		}
	})
}
