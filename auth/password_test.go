package auth

import (
	"errors"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

// countingCompare wraps bcrypt and records the cost of every hash compared.
type countingCompare struct{ costs []int }

func (c *countingCompare) compare(hash, pwd []byte) error {
	cost, _ := bcrypt.Cost(hash)
	c.costs = append(c.costs, cost)
	return bcrypt.CompareHashAndPassword(hash, pwd)
}

func TestVerifyUnknownUserDoesSameBcryptWork(t *testing.T) {
	u, err := LoadUsers(testdataUsers) // costs 4, 5 and 4
	if err != nil {
		t.Fatal(err)
	}
	var cc countingCompare
	u.compare = cc.compare

	if err := u.Verify("bob", "wrong"); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("wrong password: %v", err)
	}
	if err := u.Verify("mallory", "wrong"); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("unknown user: %v", err)
	}
	// Same error value, so the handler cannot answer differently.
	if u.Verify("bob", "x") != u.Verify("nobody", "x") {
		t.Error("wrong password and unknown user return different errors")
	}
	if len(cc.costs) != 4 {
		t.Fatalf("bcrypt compares = %d, want 4 (one per Verify)", len(cc.costs))
	}
	if cc.costs[0] != 5 || cc.costs[1] != 5 {
		t.Errorf("costs wrong-password/unknown-user = %d/%d, want 5/5", cc.costs[0], cc.costs[1])
	}
}

func TestVerifyPasswordLength(t *testing.T) {
	u := DevUsers()
	var cc countingCompare
	u.compare = cc.compare

	if err := u.Verify("maggie", strings.Repeat("p", 73)); !errors.Is(err, ErrPasswordTooLong) {
		t.Errorf("73 bytes: %v, want ErrPasswordTooLong", err)
	}
	if len(cc.costs) != 0 {
		t.Errorf("73 bytes did %d bcrypt compares, want 0", len(cc.costs))
	}
	// 72 bytes is bcrypt's limit and still checked, not refused.
	if err := u.Verify("maggie", strings.Repeat("p", 72)); !errors.Is(err, ErrBadCredentials) {
		t.Errorf("72 bytes: %v, want ErrBadCredentials", err)
	}
	if len(cc.costs) != 1 {
		t.Errorf("72 bytes did %d bcrypt compares, want 1", len(cc.costs))
	}
}

// A password that only differs after byte 72 must not log in: it is refused,
// not truncated to the real one.
func TestVerifyDoesNotTruncate(t *testing.T) {
	long := strings.Repeat("a", 72)
	u, err := newUsers("", map[string]string{"ann": long}, bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	if err := u.Verify("ann", long); err != nil {
		t.Fatalf("exact 72-byte password: %v", err)
	}
	if err := u.Verify("ann", long+"b"); !errors.Is(err, ErrPasswordTooLong) {
		t.Errorf("73-byte password with the right prefix: %v, want ErrPasswordTooLong", err)
	}
}
