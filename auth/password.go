package auth

import (
	"crypto/rand"

	"golang.org/x/crypto/bcrypt"
)

// MaxPasswordBytes is the longest password bcrypt reads. Longer ones are
// refused with ErrPasswordTooLong, never truncated.
const MaxPasswordBytes = 72

// Verify checks user's password. It returns nil on a match,
// ErrPasswordTooLong for a password over 72 bytes (no bcrypt work is done),
// and ErrBadCredentials for a wrong password or an unknown user. An unknown
// user is compared against a dummy hash of the set's highest cost, so both
// failures cost the same bcrypt work. Safe to call from many goroutines; it
// blocks for one bcrypt comparison, so never call it on an event loop.
func (u *Users) Verify(user, pwd string) error {
	if len(pwd) > MaxPasswordBytes {
		return ErrPasswordTooLong
	}
	set := u.set.Load()
	hash, known := set.hashes[user]
	if !known {
		hash = set.dummy
	}
	err := u.compare(hash, []byte(pwd))
	if !known || err != nil {
		return ErrBadCredentials
	}
	return nil
}

// dummyHash hashes a random password nobody knows at cost.
func dummyHash(cost int) ([]byte, error) {
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return nil, err
	}
	return bcrypt.GenerateFromPassword(secret, cost)
}

// dummyCost is the cost of a dummy hash, or 0 if there is none.
func dummyCost(hash []byte) int {
	cost, err := bcrypt.Cost(hash)
	if err != nil {
		return 0
	}
	return cost
}
