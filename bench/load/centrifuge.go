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
// centrifuge peer: all of them. Its channels are subscribed with its own
// subscribe command, recovering with its own recovery (the missed
// publications come in the subscribe reply); its storm drops the clients
// from their side, as the other peers', since the peer has no
// /disconnect.
var centrifugeScenarios = []string{"connect", "reject", "fanout", "echo", "churn", "channels", "storm"}

// unsupported says why the named server does not run scenario sc, or "".
func unsupported(name, sc string) string {
	if wireFor(name) == wireCentrifuge && !slices.Contains(centrifugeScenarios, sc) {
		return fmt.Sprintf("the load client speaks only %v to centrifuge", centrifugeScenarios)
	}
	return ""
}

// centrifugeMessage takes one WebSocket message from a centrifuge server:
// one reply or push a line. Pings are answered; the connect reply is the
// welcome; a subscribe reply counts the subscription (channels) or is the
// storm's subscribed answer, its recovered publications taken one by one;
// publications and async messages (echoes) go on to onPayload as their
// data alone, as a turnstile message's data would, except in the storm,
// which checks their offsets. The bytes on the wire are shared out over
// the lines.
func (w *worker) centrifugeMessage(c *wsconn, op byte, msg []byte, rx received, now int64) {
	cwire.Each(msg, func(b []byte) {
		if c.state == stClosed {
			return // closed by a line before (churn)
		}
		l := cwire.Parse(b)
		part := rx
		part.wire = rx.wire * (len(b) + 1) / (len(msg) + 1)
		switch {
		case l.Kind == cwire.Ping:
			w.eng.send(c, opText, cwire.Pong, now)
		case l.Kind == cwire.Error:
			w.res.addError(errCentrifugeReply)
		case !c.welcome:
			if l.Kind != cwire.ConnectReply {
				w.res.addError(errNoWelcome)
			}
			w.onPayload(c, op, b, part, now)
		case l.Kind == cwire.SubscribeReply && w.storm != nil:
			var recovered *bool
			if l.Recovering {
				recovered = &l.Recovered
			}
			w.stormSubscribed(c, int64(l.Top()), l.Epoch, recovered, now)
			for _, p := range l.Pubs {
				w.stormPublication(c, int64(p.Offset), p.Data, now)
			}
		case l.Kind == cwire.SubscribeReply:
			w.res.Subscribed++
		case l.Kind == cwire.Publication && w.storm != nil:
			w.stormPublication(c, int64(l.Offset), l.Data, now)
		case l.Kind == cwire.Publication, l.Kind == cwire.Message:
			w.onPayload(c, op, l.Data, part, now)
		}
	})
}
