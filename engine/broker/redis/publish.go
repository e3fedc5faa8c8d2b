package redis

import (
	"context"
	"strconv"
	"strings"

	"github.com/redis/rueidis"

	"github.com/turnstile-push/turnstile/engine/broker"
)

// Publish assigns the offset, appends to history and publishes in one
// script (see the package doc). It fails with ErrUnavailable when Redis
// cannot be reached or does not answer within the timeout; then nothing
// was published, or — a reply lost after Redis ran the script — the
// message was published once and a retry with the same idempotency key
// answers its result. Safe for concurrent use; blocks on Redis.
func (b *Broker) Publish(ctx context.Context, channel string, data []byte, opts broker.PublishOptions) (broker.PublishResult, error) {
	switch {
	case channel == "":
		return broker.PublishResult{}, broker.ErrEmptyChannel
	case len(opts.IdempotencyKey) > broker.MaxIdempotencyKeyLen:
		return broker.PublishResult{}, broker.ErrIdempotencyKeyTooLong
	}
	s := b.shardFor(channel)
	meta, stream, pubsub := b.keys(channel)
	idem, hasIdem := meta[:len(meta)-2]+":i:"+opts.IdempotencyKey, "0"
	if opts.IdempotencyKey != "" {
		hasIdem = "1"
	}
	r, err := b.do(ctx, func(ctx context.Context) rueidis.RedisResult {
		return publishScript.Exec(ctx, s.client, []string{meta, stream, idem}, []string{
			randomID(), string(data), strconv.Itoa(b.cfg.HistorySize),
			ms(b.cfg.HistoryTTL), ms(b.cfg.MetaTTL), pubsub, hasIdem, b.publishCmd(),
		})
	})
	if err != nil {
		return broker.PublishResult{}, err
	}
	arr, err := r.ToArray()
	if err != nil || len(arr) != 2 {
		return broker.PublishResult{}, broker.ErrUnavailable
	}
	posText, _ := arr[0].ToString()
	dup, _ := arr[1].AsInt64()
	off, epoch, ok := parsePosition(posText)
	if !ok {
		return broker.PublishResult{}, broker.ErrUnavailable
	}
	return broker.PublishResult{Position: broker.Position{Offset: off, Epoch: epoch}, Duplicate: dup == 1}, nil
}

// Broadcast publishes data on the control channel. Safe for concurrent
// use; blocks on Redis.
func (b *Broker) Broadcast(ctx context.Context, data []byte) error {
	return b.control(ctx, "b"+string(data))
}

// Disconnect publishes d on the control channel: "c<conn>", "u<user>",
// or "U<origin>\n<user>" when d names its Origin (node ids never hold a
// newline). A connection's Origin is not sent: its id is unique, so the
// delivery back to the origin cannot close another connection. Safe for
// concurrent use; blocks on Redis.
func (b *Broker) Disconnect(ctx context.Context, d broker.Disconnect) error {
	switch {
	case (d.User == "") == (d.Conn == "") || strings.Contains(d.Origin, "\n"):
		return broker.ErrBadDisconnect
	case d.Conn != "":
		return b.control(ctx, "c"+d.Conn)
	case d.Origin != "":
		return b.control(ctx, "U"+d.Origin+"\n"+d.User)
	}
	return b.control(ctx, "u"+d.User)
}

func (b *Broker) control(ctx context.Context, msg string) error {
	c := b.shards[0].client
	_, err := b.do(ctx, func(ctx context.Context) rueidis.RedisResult {
		return c.Do(ctx, c.B().Publish().Channel(b.ctl).Message(msg).Build())
	})
	return err
}

// Position returns the channel's position, creating its epoch if the
// channel has none. Safe for concurrent use; blocks on Redis.
func (b *Broker) Position(ctx context.Context, channel string) (broker.Position, error) {
	s := b.shardFor(channel)
	meta, stream, _ := b.keys(channel)
	r, err := b.doIdempotent(ctx, func(ctx context.Context) rueidis.RedisResult {
		return positionScript.Exec(ctx, s.client, []string{meta, stream}, []string{randomID(), ms(b.cfg.MetaTTL)})
	})
	if err != nil {
		return broker.Position{}, err
	}
	arr, err := r.ToArray()
	if err != nil || len(arr) != 2 {
		return broker.Position{}, broker.ErrUnavailable
	}
	o, err1 := arr[0].AsUint64()
	e, err2 := arr[1].ToString()
	if err1 != nil || err2 != nil {
		return broker.Position{}, broker.ErrUnavailable
	}
	return broker.Position{Offset: o, Epoch: e}, nil
}

// History returns every publication after since, all or none (see
// broker.Broker). Safe for concurrent use; blocks on Redis.
func (b *Broker) History(ctx context.Context, channel string, since broker.Position) ([]broker.Publication, broker.Position, error) {
	s := b.shardFor(channel)
	meta, stream, _ := b.keys(channel)
	r, err := b.doIdempotent(ctx, func(ctx context.Context) rueidis.RedisResult {
		return historyScript.Exec(ctx, s.client, []string{meta, stream}, []string{
			randomID(), ms(b.cfg.MetaTTL), since.Epoch,
			strconv.FormatUint(since.Offset, 10), strconv.Itoa(b.cfg.HistorySize),
		})
	})
	if err != nil {
		return nil, broker.Position{}, err
	}
	arr, err := r.ToArray()
	if err != nil || len(arr) < 2 {
		return nil, broker.Position{}, broker.ErrUnavailable
	}
	o, err1 := arr[0].AsUint64()
	e, err2 := arr[1].ToString()
	if err1 != nil || err2 != nil {
		return nil, broker.Position{}, broker.ErrUnavailable
	}
	pos := broker.Position{Offset: o, Epoch: e}
	if since.Epoch != e || since.Offset > o {
		return nil, pos, broker.ErrUnrecoverable
	}
	if since.Offset == o {
		return nil, pos, nil
	}
	if len(arr) < 3 {
		return nil, pos, broker.ErrUnrecoverable
	}
	entries, err := arr[2].AsXRange()
	if err != nil {
		return nil, broker.Position{}, broker.ErrUnavailable
	}
	pubs, ok := toPublications(channel, e, since.Offset, o, entries)
	if !ok {
		return nil, pos, broker.ErrUnrecoverable
	}
	return pubs, pos, nil
}

// toPublications checks that entries are exactly the offsets after since
// up to top, in order, and converts them.
func toPublications(channel, epoch string, since, top uint64, entries []rueidis.XRangeEntry) ([]broker.Publication, bool) {
	if uint64(len(entries)) != top-since {
		return nil, false
	}
	pubs := make([]broker.Publication, len(entries))
	for i, en := range entries {
		id, _, _ := strings.Cut(en.ID, "-")
		off, err := strconv.ParseUint(id, 10, 64)
		d, ok := en.FieldValues["d"]
		if err != nil || off != since+1+uint64(i) || !ok {
			return nil, false
		}
		pubs[i] = broker.Publication{Channel: channel, Offset: off, Epoch: epoch, Data: []byte(d)}
	}
	return pubs, true
}

// parsePosition reads "<offset>:<epoch>".
func parsePosition(s string) (uint64, string, bool) {
	o, e, ok := strings.Cut(s, ":")
	off, err := strconv.ParseUint(o, 10, 64)
	if !ok || err != nil || e == "" {
		return 0, "", false
	}
	return off, e, true
}

func ms(d interface{ Milliseconds() int64 }) string {
	return strconv.FormatInt(max(d.Milliseconds(), 1), 10)
}
