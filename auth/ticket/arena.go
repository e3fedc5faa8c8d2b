package ticket

import (
	"encoding/binary"
	"runtime"
	"sync/atomic"
	"time"
	"unsafe"
)

// arena keeps the claims of a Map's live tickets as bytes, in chunks the
// garbage collector marks but never scans. A record is written once, by
// Issue, and never again: Redeem returns Claims whose strings and Channels
// point into the chunk, so they stay valid (and keep the chunk's bytes
// alive) for as long as the caller holds them, and Redeem allocates
// nothing. Chunks are never reused: once a chunk is no longer any lane's
// current chunk (sealed) and its last record is released, the arena drops
// it, and the collector frees it when no redeemed Claims refers to it.
//
// Issue appends to the current chunk of its lane (lanes spread concurrent
// issuers), bumping the chunk's fill by one atomic add; when a record does
// not fit, the issuer installs a fresh chunk by one CAS. Each step is
// bounded: put tries putAttempts chunks, then reports failure.
type arena struct {
	lanes    []lane
	laneMask int
	dir      []atomic.Pointer[chunk] // chunk number → chunk; nil when free
	dirNext  atomic.Uint64           // where the next chunk's number is sought
	bytes    atomic.Int64            // bytes of the chunks in dir
	maxBytes int64
}

// lane is one current chunk, on its own cache line.
type lane struct {
	cur atomic.Pointer[chunk]
	_   [cacheLine - 8]byte
}

// chunk is a run of records. b is allocated as []byte: no pointer the
// collector would follow (the string headers of Channels, stored inside,
// point back into b itself, which the Claims holding them keep alive).
type chunk struct {
	b    []byte
	used atomic.Int64 // bytes handed out (may pass len(b))
	// refs counts the records in b plus the issuers appending to it, and
	// has sealedBit set once it is no longer a lane's current chunk.
	refs atomic.Int64
	num  uint64 // index in dir
}

const (
	// chunkSize is the size of a shared chunk (about 70 typical records); a
	// larger record gets a chunk of its own. Small, because a redeemed
	// Claims keeps its whole chunk alive: a connection that holds its
	// Subject for hours holds at most this much beside it.
	chunkSize = 4 << 10
	// arenaBytesPerTicket is the arena budget per unit of capacity: the
	// average encoded claims may take this much (a record is 32 bytes plus
	// 16 per channel plus the strings) before Issue answers ErrFull.
	arenaBytesPerTicket = 256
	// maxLanes caps the number of lanes (each holds a chunk resident).
	maxLanes = 64
	// putAttempts bounds the chunks put tries.
	putAttempts = 4
	sealedBit   = 1 << 62
	// A reference is the chunk number (refChunkBits) and the record's
	// offset in 8-byte units: 40 bits, the state word's top.
	refChunkBits = 24
	maxChunks    = 1 << refChunkBits
	// recHeader is a record's fixed part: session expiry (8 seconds, 4
	// nanoseconds or -1 for none), channel count + 1 (0 for nil), and the
	// lengths of Subject, RemoteAddr and Origin, 4 bytes each.
	recHeader = 32
)

func (a *arena) init(capacity, shards int) {
	lanes := min(ceilPow2(runtime.GOMAXPROCS(0)), shards, maxLanes)
	a.lanes = make([]lane, lanes)
	a.laneMask = lanes - 1
	a.maxBytes = int64(capacity)*arenaBytesPerTicket + 2*int64(lanes)*chunkSize
	// Every chunk in dir holds at least chunkSize bytes of the budget,
	// except the lanes' fresh ones.
	a.dir = make([]atomic.Pointer[chunk], min(int(a.maxBytes/chunkSize)+2*lanes, maxChunks))
}

// recordSize is the encoded size of c, a multiple of 8.
func recordSize(c *Claims) int {
	n := recHeader + 16*len(c.Channels) + len(c.Subject) + len(c.RemoteAddr) + len(c.Origin)
	for _, ch := range c.Channels {
		n += len(ch)
	}
	return (n + 7) &^ 7
}

// put writes c as a record through lane and returns its reference, or
// false when the arena's budget is spent (or contention exhausted the
// attempts).
func (a *arena) put(c *Claims, laneHint int) (uint64, bool) {
	size := recordSize(c)
	if size > chunkSize {
		ch := a.newChunk(size)
		if ch == nil {
			return 0, false
		}
		ch.used.Store(int64(size))
		ch.refs.Store(1 | sealedBit)
		ch.write(0, c)
		return ch.num, true
	}
	ln := &a.lanes[laneHint&a.laneMask]
	for range putAttempts {
		cur := ln.cur.Load()
		if cur != nil {
			if cur.refs.Add(1)&sealedBit == 0 {
				if end := cur.used.Add(int64(size)); end <= int64(len(cur.b)) {
					off := int(end) - size
					cur.write(off, c)
					return cur.num | uint64(off/8)<<refChunkBits, true
				}
			}
			a.drop(cur) // our reference: nothing was written
			if ln.cur.Load() != cur {
				continue // another issuer installed a fresh chunk: use it
			}
		}
		fresh := a.newChunk(chunkSize)
		if fresh == nil {
			return 0, false
		}
		if ln.cur.CompareAndSwap(cur, fresh) {
			if cur != nil {
				a.seal(cur)
			}
		} else {
			a.retire(fresh) // another issuer installed one: use theirs
		}
	}
	return 0, false
}

// newChunk allocates a chunk of size bytes and gives it a number, or
// returns nil when the budget or the directory is spent.
func (a *arena) newChunk(size int) *chunk {
	if a.bytes.Add(int64(size)) > a.maxBytes {
		a.bytes.Add(-int64(size))
		return nil
	}
	ch := &chunk{b: make([]byte, size)}
	for range len(a.dir) {
		n := (a.dirNext.Add(1) - 1) % uint64(len(a.dir))
		ch.num = n
		if a.dir[n].CompareAndSwap(nil, ch) {
			return ch
		}
	}
	a.bytes.Add(-int64(size))
	return nil
}

// seal marks ch as no lane's current chunk: it goes once empty.
func (a *arena) seal(ch *chunk) {
	if ch.refs.Add(sealedBit) == sealedBit {
		a.retire(ch)
	}
}

// drop gives back one reference to ch.
func (a *arena) drop(ch *chunk) {
	if ch.refs.Add(-1) == sealedBit {
		a.retire(ch)
	}
}

// retire removes ch from the directory (once, however many callers see it
// empty: an issuer that took and dropped a reference on a sealed chunk may
// see it empty again).
func (a *arena) retire(ch *chunk) {
	if a.dir[ch.num].CompareAndSwap(ch, nil) {
		a.bytes.Add(-int64(len(ch.b)))
	}
}

// release gives back the reference of the record ref: the ticket is gone.
func (a *arena) release(ref uint64) {
	a.drop(a.dir[ref&(maxChunks-1)].Load())
}

// write encodes c at b[off:]. Only the issuer that reserved b[off:off+size]
// writes there, once, before the ticket is published.
func (ch *chunk) write(off int, c *Claims) {
	b := ch.b[off:]
	sec, nsec := int64(0), int32(-1)
	if !c.SessionExpires.IsZero() {
		sec, nsec = c.SessionExpires.Unix(), int32(c.SessionExpires.Nanosecond())
	}
	nch := uint32(0)
	if c.Channels != nil {
		nch = uint32(len(c.Channels)) + 1
	}
	binary.LittleEndian.PutUint64(b[0:], uint64(sec))
	binary.LittleEndian.PutUint32(b[8:], uint32(nsec))
	binary.LittleEndian.PutUint32(b[12:], nch)
	binary.LittleEndian.PutUint32(b[16:], uint32(len(c.Subject)))
	binary.LittleEndian.PutUint32(b[20:], uint32(len(c.RemoteAddr)))
	binary.LittleEndian.PutUint32(b[24:], uint32(len(c.Origin)))
	p := recHeader + 16*len(c.Channels)
	p += copy(b[p:], c.Subject)
	p += copy(b[p:], c.RemoteAddr)
	p += copy(b[p:], c.Origin)
	for i, s := range c.Channels {
		// Only the length: the bytes follow in order. No pointer is ever
		// stored in the chunk, which the collector does not scan.
		binary.LittleEndian.PutUint64(b[recHeader+16*i:], uint64(len(s)))
		p += copy(b[p:], s)
	}
}

// claims decodes the record ref. It allocates only the Channels slice,
// when there are channels.
func (a *arena) claims(ref uint64) Claims {
	ch := a.dir[ref&(maxChunks-1)].Load()
	b := ch.b[(ref>>refChunkBits)*8:]
	var c Claims
	if nsec := int32(binary.LittleEndian.Uint32(b[8:])); nsec >= 0 {
		c.SessionExpires = time.Unix(int64(binary.LittleEndian.Uint64(b[0:])), int64(nsec))
	}
	nch := int(binary.LittleEndian.Uint32(b[12:]))
	ls := int(binary.LittleEndian.Uint32(b[16:]))
	la := int(binary.LittleEndian.Uint32(b[20:]))
	lo := int(binary.LittleEndian.Uint32(b[24:]))
	p := recHeader
	switch {
	case nch == 1:
		c.Channels = []string{} // empty but not nil, as given; no allocation
	case nch > 1:
		p += 16 * (nch - 1)
	}
	c.Subject, p = str(b, p, ls), p+ls
	c.RemoteAddr, p = str(b, p, la), p+la
	c.Origin, p = str(b, p, lo), p+lo
	if nch > 1 {
		// The one allocation of a redeem, and only with channels: the
		// slice of string headers must live where the collector sees it.
		c.Channels = make([]string, nch-1)
		for i := range c.Channels {
			n := int(binary.LittleEndian.Uint64(b[recHeader+16*i:]))
			c.Channels[i], p = str(b, p, n), p+n
		}
	}
	return c
}

// str returns b[p:p+n] as a string sharing b's bytes, which are never
// written again.
func str(b []byte, p, n int) string {
	if n == 0 {
		return ""
	}
	return unsafe.String(&b[p], n)
}
