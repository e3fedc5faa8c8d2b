package ticket

import (
	"crypto/rand"
	"encoding/binary"
)

// A Map's ticket carries its slot number, hidden: the 128 bits are
// (slot number ‖ 96 random bits) put through a 4-round Feistel permutation
// of two 64-bit halves under the Map's random key. The permutation keeps the
// table's layout and fill out of the tickets; unguessability does not rest
// on it, but on the 96 random bits, which Redeem checks in full against the
// slot (any 128-bit guess names one slot and one value of those bits).

// mintRounds is the number of Feistel rounds (4: a strong pseudorandom
// permutation for a pseudorandom round function, Luby–Rackoff).
const mintRounds = 4

// newMintKey returns a fresh random key, one word per round.
func newMintKey() (k [mintRounds]uint64) {
	var b [8 * mintRounds]byte
	// crypto/rand.Read never fails (it crashes the program instead).
	_, _ = rand.Read(b[:])
	for i := range k {
		k[i] = binary.LittleEndian.Uint64(b[8*i:])
	}
	return k
}

// mix is the round function: the 64-bit finalizer of MurmurHash3, a
// bijection with full avalanche.
func mix(x uint64) uint64 {
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	return x
}

// ticketWords returns t as two little-endian words.
func ticketWords(t *Ticket) (lo, hi uint64) {
	return binary.LittleEndian.Uint64(t[:8]), binary.LittleEndian.Uint64(t[8:])
}

// mint returns the ticket for slot number idx (< 2³²) and the random bits
// of r (96 of its 128 bits are used).
func (m *Map) mint(idx uint64, r *Ticket) Ticket {
	rlo, rhi := ticketWords(r)
	lo, hi := idx&(1<<32-1)|rlo<<32, rhi
	for i := range mintRounds {
		lo, hi = hi^mix(lo^m.key[i]), lo
	}
	var t Ticket
	binary.LittleEndian.PutUint64(t[:8], lo)
	binary.LittleEndian.PutUint64(t[8:], hi)
	return t
}

// slotOf returns the slot number that t names (the inverse of mint). Every
// ticket names some number; most name no slot of the table.
func (m *Map) slotOf(t *Ticket) uint64 {
	lo, hi := ticketWords(t)
	for i := mintRounds - 1; i >= 0; i-- {
		lo, hi = hi, lo^mix(hi^m.key[i])
	}
	return lo & (1<<32 - 1)
}
