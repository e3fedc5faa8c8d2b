package auth

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/crypto/bcrypt"
)

// Users is the set of accounts that may log in: bcrypt hashes from an
// htpasswd file (or the single -dev user). Verify is safe to call from many
// goroutines at once, also while Reload swaps in a new set. Make one with
// LoadUsers or DevUsers; the zero value is not usable.
type Users struct {
	path string
	set  atomic.Pointer[userSet]
	// reloadMu serialises Reload calls; Verify never takes it.
	reloadMu sync.Mutex
	// compare is bcrypt.CompareHashAndPassword; tests count calls through it.
	compare func(hash, pwd []byte) error
}

// userSet is one immutable generation of users.
type userSet struct {
	hashes map[string][]byte
	// dummy is compared against for unknown users so that they cost the same
	// bcrypt work as a wrong password. Its cost is the highest in the set.
	dummy []byte
}

// DevUsers returns the -dev account maggie / secret. The hash is computed at
// start with bcrypt.MinCost: the password is public, so a high cost would
// only slow every test and every -dev start down. Files loaded with
// LoadUsers keep whatever cost their hashes carry.
func DevUsers() *Users {
	u, err := newUsers("", map[string]string{"maggie": "secret"}, bcrypt.MinCost)
	if err != nil {
		// Only crypto/rand failing can get here; nothing works without it.
		panic("auth: cannot hash the dev password: " + err.Error())
	}
	return u
}

// newUsers hashes plain passwords at cost; for DevUsers and tests.
func newUsers(path string, plain map[string]string, cost int) (*Users, error) {
	set := &userSet{hashes: make(map[string][]byte, len(plain))}
	for name, pwd := range plain {
		h, err := bcrypt.GenerateFromPassword([]byte(pwd), cost)
		if err != nil {
			return nil, err
		}
		set.hashes[name] = h
	}
	dummy, err := dummyHash(cost)
	if err != nil {
		return nil, err
	}
	set.dummy = dummy
	u := &Users{path: path, compare: bcrypt.CompareHashAndPassword}
	u.set.Store(set)
	return u, nil
}

// LoadUsers reads an htpasswd file of bcrypt entries, the format
// `htpasswd -B` writes: one "user:hash" a line; blank lines and lines whose
// first non-blank character is '#' are skipped. Any other hash type, a
// malformed line, a duplicate user or a file without users is refused with
// an error naming the file and line.
func LoadUsers(path string) (*Users, error) {
	set, err := readUserFile(path, nil)
	if err != nil {
		return nil, err
	}
	u := &Users{path: path, compare: bcrypt.CompareHashAndPassword}
	u.set.Store(set)
	return u, nil
}

// Reload reads the file again and swaps the new set in atomically. Logins in
// flight finish against the set they started with. If the file is bad, the
// old set stays and the error is returned. For DevUsers it does nothing.
// Safe to call from any goroutine (e.g. a SIGHUP handler).
func (u *Users) Reload() error {
	if u.path == "" {
		return nil
	}
	u.reloadMu.Lock()
	defer u.reloadMu.Unlock()
	set, err := readUserFile(u.path, u.set.Load())
	if err != nil {
		return err
	}
	u.set.Store(set)
	return nil
}

// Len is the number of users. Safe from any goroutine.
func (u *Users) Len() int { return len(u.set.Load().hashes) }

// readUserFile parses path; prev, if not nil, lends its dummy hash when the
// cost is unchanged so that a reload does not pay for a new one.
func readUserFile(path string, prev *userSet) (*userSet, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("auth: users: %w", err)
	}
	set := &userSet{hashes: make(map[string][]byte)}
	maxCost := 0
	sc := bufio.NewScanner(bytes.NewReader(data))
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSuffix(sc.Text(), "\r")
		trimmed := strings.TrimSpace(text)
		if trimmed == "" || strings.HasPrefix(trimmed, "#") {
			continue
		}
		name, hash, err := parseUserLine(text)
		if err == nil {
			if _, dup := set.hashes[name]; dup {
				err = ErrDuplicateUser
			}
		}
		if err != nil {
			return nil, fmt.Errorf("auth: %s:%d: %w", path, line, err)
		}
		cost, _ := bcrypt.Cost(hash) // parseUserLine checked it
		maxCost = max(maxCost, cost)
		set.hashes[name] = hash
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("auth: %s: %w", path, err)
	}
	if len(set.hashes) == 0 {
		return nil, fmt.Errorf("auth: %s: %w", path, ErrNoUsers)
	}
	if prev != nil && dummyCost(prev.dummy) == maxCost {
		set.dummy = prev.dummy
	} else if set.dummy, err = dummyHash(maxCost); err != nil {
		return nil, fmt.Errorf("auth: %s: %w", path, err)
	}
	return set, nil
}

// parseUserLine splits "user:hash" and checks that hash is a well-formed
// bcrypt hash. Errors never quote the hash.
func parseUserLine(text string) (name string, hash []byte, err error) {
	name, h, ok := strings.Cut(text, ":")
	if !ok || name == "" || h == "" || strings.ContainsFunc(name, isSpaceOrControl) {
		return "", nil, ErrMalformedLine
	}
	if !isBcryptHash(h) {
		return "", nil, ErrUnsupportedHash
	}
	return name, []byte(h), nil
}

func isSpaceOrControl(r rune) bool { return r <= ' ' || r == 0x7f }

// isBcryptHash reports whether h is "$2a$", "$2b$" or "$2y$", a two-digit
// cost bcrypt accepts, "$", and 53 characters of bcrypt's base64 alphabet.
func isBcryptHash(h string) bool {
	const size = 60
	if len(h) != size || h[0] != '$' || h[1] != '2' || h[3] != '$' || h[6] != '$' {
		return false
	}
	switch h[2] {
	case 'a', 'b', 'y':
	default:
		return false
	}
	for i := 7; i < size; i++ {
		c := h[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '/') {
			return false
		}
	}
	_, err := bcrypt.Cost([]byte(h))
	return err == nil
}
