package load

import (
	"math/rand/v2"
	"strconv"
)

// fanoutData is the JSON object fanout publishes as publish seq, stamped
// stamp (Unix ns). With size 0 it is {"seq":N,"t":T}, as it always was.
// With a size it is a notification of exactly size bytes that compresses
// like real JSON: repeated keys and structure, varied words, ids and times
// (not one repeated byte, which any deflate squeezes to nothing). The same
// seq gives the same words, so every server gets the same payloads; the
// worker rebuilds it from seq and stamp to check each delivery.
func fanoutData(seq int, stamp int64, size int) []byte {
	b := make([]byte, 0, max(size, 48))
	b = append(b, `{"seq":`...)
	b = strconv.AppendInt(b, int64(seq), 10)
	b = append(b, `,"t":`...)
	b = strconv.AppendInt(b, stamp, 10)
	if size == 0 {
		return append(b, '}')
	}
	rng := rand.New(rand.NewPCG(uint64(seq), 0x7475726e7374696c)) // "turnstil"
	b = append(b, `,"type":"notification","app":"turnstile-demo","items":[`...)
	const noteHead, end = `],"note":"`, `"}`
	for i := 0; ; i++ {
		item := appendItem(nil, rng, i)
		if len(b)+1+len(item)+len(noteHead)+len(end) > size {
			break
		}
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, item...)
	}
	b = append(b, noteHead...)
	// Words up to the size; cutting the last one is harmless, as they are
	// plain ASCII letters with nothing to escape.
	for len(b) < size-len(end) {
		b = append(append(b, pick(rng, words)...), ' ')
	}
	return append(b[:size-len(end)], end...)
}

// minMessageSize is the smallest -message-size: the fixed head and the
// note around the items.
const minMessageSize = 128

// appendItem appends one feed item: the fields a notification API sends.
func appendItem(b []byte, rng *rand.Rand, i int) []byte {
	b = append(b, `{"id":`...)
	b = strconv.AppendInt(b, 100000+rng.Int64N(900000), 10)
	b = append(b, `,"kind":"`...)
	b = append(b, pick(rng, kinds)...)
	b = append(b, `","user":{"id":"u-`...)
	b = strconv.AppendInt(b, rng.Int64N(100000), 36)
	b = append(b, `","name":"`...)
	b = append(append(append(b, pick(rng, firstNames)...), ' '), pick(rng, lastNames)...)
	b = append(b, `"},"title":"`...)
	b = appendWords(b, rng, 3+rng.IntN(4))
	b = append(b, `","body":"`...)
	b = appendWords(b, rng, 8+rng.IntN(12))
	b = append(b, `","tags":["`...)
	b = append(append(append(b, pick(rng, tags)...), `","`...), pick(rng, tags)...)
	b = append(b, `"],"at":"2026-`...)
	b = appendTwo(b, 1+rng.IntN(12))
	b = append(b, '-')
	b = appendTwo(b, 1+rng.IntN(28))
	b = append(b, 'T')
	b = appendTwo(b, rng.IntN(24))
	b = append(b, ':')
	b = appendTwo(b, rng.IntN(60))
	b = append(b, `:00Z","read":`...)
	b = strconv.AppendBool(b, i%3 == 0)
	return append(b, '}')
}

func appendWords(b []byte, rng *rand.Rand, n int) []byte {
	for k := range n {
		if k > 0 {
			b = append(b, ' ')
		}
		b = append(b, pick(rng, words)...)
	}
	return b
}

func appendTwo(b []byte, v int) []byte { return append(b, byte('0'+v/10), byte('0'+v%10)) }

func pick(rng *rand.Rand, from []string) string { return from[rng.IntN(len(from))] }

var (
	kinds      = []string{"comment", "mention", "review", "deploy", "invoice", "alert", "follow", "reply"}
	tags       = []string{"billing", "infra", "design", "urgent", "weekly", "support", "release", "security", "mobile", "docs"}
	firstNames = []string{"Ada", "Bram", "Chiara", "Dmitri", "Esi", "Farid", "Greta", "Hiro", "Ines", "Jonas", "Keiko", "Lars", "Mina", "Nuno", "Olga", "Priya"}
	lastNames  = []string{"Moreno", "Okafor", "Lindqvist", "Tanaka", "Novak", "Haddad", "Schulz", "Costa", "Ivanova", "Mensah", "Dubois", "Kaur"}
	words      = []string{
		"the", "a", "report", "draft", "quarterly", "server", "latency", "update", "please", "review",
		"merged", "branch", "customer", "ticket", "opened", "closed", "payment", "failed", "retry", "schedule",
		"meeting", "tomorrow", "morning", "budget", "approved", "pending", "release", "notes", "version", "cluster",
		"node", "restarted", "after", "alert", "disk", "usage", "above", "threshold", "team", "shared",
		"document", "with", "you", "comment", "on", "your", "pull", "request", "invoice", "due",
		"friday", "new", "follower", "mentioned", "in", "thread", "about", "migration", "database", "backup",
		"completed", "successfully", "error", "rate", "increased", "since", "deploy", "rollback", "started", "by",
	}
)
