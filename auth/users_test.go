package auth

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

const testdataUsers = "testdata/users.htpasswd"

// A valid bcrypt hash at cost 4 (password "wonderland") for building files.
const goodHash = "$2y$04$oVUCiNHSOTuZQVXHG01FHOiiqqjGKsX.z3sPiSqID0ffQwdgHnReC"

func writeFile(t *testing.T, dir, content string) string {
	t.Helper()
	path := filepath.Join(dir, "users.htpasswd")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestLoadUsersTestdata(t *testing.T) {
	u, err := LoadUsers(testdataUsers)
	if err != nil {
		t.Fatal(err)
	}
	if u.Len() != 3 {
		t.Fatalf("Len = %d, want 3", u.Len())
	}
	for _, c := range []struct{ user, pwd string }{{"alice", "wonderland"}, {"bob", "builder"}, {"carol", "singer"}} {
		if err := u.Verify(c.user, c.pwd); err != nil {
			t.Errorf("Verify(%s) = %v, want nil", c.user, err)
		}
	}
	// The dummy hash for unknown users has the highest cost in the file.
	if got := dummyCost(u.set.Load().dummy); got != 5 {
		t.Errorf("dummy cost = %d, want 5 (bob's)", got)
	}
}

func TestLoadUsersCRLFAndComments(t *testing.T) {
	path := writeFile(t, t.TempDir(), "# c\r\n\r\nalice:"+goodHash+"\r\n")
	u, err := LoadUsers(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := u.Verify("alice", "wonderland"); err != nil {
		t.Fatal(err)
	}
}

// badUserFiles are refused at load; line is where the error must point.
var badUserFiles = []struct {
	name    string
	content string
	line    int
	want    error
}{
	{"apr1 md5", "alice:" + goodHash + "\nbob:$apr1$abcdefgh$0123456789abcdefghijkl\n", 2, ErrUnsupportedHash},
	{"sha1", "# x\nbob:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n", 2, ErrUnsupportedHash},
	{"crypt", "bob:rl0uE6uCwW/yI\n", 1, ErrUnsupportedHash},
	{"plain text", "bob:secret\n", 1, ErrUnsupportedHash},
	{"sha512 crypt", "bob:$6$salt$" + strings.Repeat("a", 86) + "\n", 1, ErrUnsupportedHash},
	{"bcrypt 2x", "bob:$2x$04$oVUCiNHSOTuZQVXHG01FHOiiqqjGKsX.z3sPiSqID0ffQwdgHnReC\n", 1, ErrUnsupportedHash},
	{"bcrypt cost 3", "bob:$2y$03$oVUCiNHSOTuZQVXHG01FHOiiqqjGKsX.z3sPiSqID0ffQwdgHnReC\n", 1, ErrUnsupportedHash},
	{"bcrypt cost 32", "bob:$2y$32$oVUCiNHSOTuZQVXHG01FHOiiqqjGKsX.z3sPiSqID0ffQwdgHnReC\n", 1, ErrUnsupportedHash},
	{"bcrypt truncated", "bob:" + goodHash[:59] + "\n", 1, ErrUnsupportedHash},
	{"bcrypt bad alphabet", "bob:" + goodHash[:59] + "!\n", 1, ErrUnsupportedHash},
	{"bcrypt trailing space", "bob:" + goodHash + " \n", 1, ErrUnsupportedHash},
	{"no colon", "\n\nbob\n", 3, ErrMalformedLine},
	{"empty user", ":" + goodHash + "\n", 1, ErrMalformedLine},
	{"empty hash", "bob:\n", 1, ErrMalformedLine},
	{"space in user", "b ob:" + goodHash + "\n", 1, ErrMalformedLine},
	{"duplicate", "bob:" + goodHash + "\n#\nbob:" + goodHash + "\n", 3, ErrDuplicateUser},
}

func TestLoadUsersRefusesBadFiles(t *testing.T) {
	dir := t.TempDir()
	for _, c := range badUserFiles {
		t.Run(c.name, func(t *testing.T) {
			path := writeFile(t, dir, c.content)
			u, err := LoadUsers(path)
			if err == nil {
				t.Fatalf("LoadUsers accepted it (%d users)", u.Len())
			}
			if !errors.Is(err, c.want) {
				t.Errorf("error %q is not %q", err, c.want)
			}
			where := path + ":" + strconv.Itoa(c.line) + ":"
			if !strings.Contains(err.Error(), where) {
				t.Errorf("error %q does not name %q", err, where)
			}
			if strings.Contains(err.Error(), "oVUCiNHS") || strings.Contains(err.Error(), "{SHA}") || strings.Contains(err.Error(), "apr1") {
				t.Errorf("error %q quotes the hash", err)
			}
		})
	}
}

func TestLoadUsersEmptyAndMissing(t *testing.T) {
	dir := t.TempDir()
	path := writeFile(t, dir, "# only comments\n\n")
	if _, err := LoadUsers(path); !errors.Is(err, ErrNoUsers) || !strings.Contains(err.Error(), path) {
		t.Errorf("empty file: err = %v, want ErrNoUsers naming %s", err, path)
	}
	missing := filepath.Join(dir, "nope")
	if _, err := LoadUsers(missing); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: err = %v, want not-exist", err)
	}
}

func TestReloadSwapsAndKeepsOldOnBadFile(t *testing.T) {
	dir := t.TempDir()
	path := writeFile(t, dir, "alice:"+goodHash+"\n")
	u, err := LoadUsers(path)
	if err != nil {
		t.Fatal(err)
	}
	bobHash, _ := bcrypt.GenerateFromPassword([]byte("builder"), bcrypt.MinCost)

	// A good file replaces the set.
	writeFile(t, dir, "bob:"+string(bobHash)+"\n")
	if err := u.Reload(); err != nil {
		t.Fatal(err)
	}
	if err := u.Verify("bob", "builder"); err != nil {
		t.Errorf("bob after reload: %v", err)
	}
	if err := u.Verify("alice", "wonderland"); !errors.Is(err, ErrBadCredentials) {
		t.Errorf("alice after reload: %v, want ErrBadCredentials", err)
	}

	// A bad file keeps bob and reports where it is wrong.
	writeFile(t, dir, "bob:"+string(bobHash)+"\ncarol:{SHA}xyz\n")
	err = u.Reload()
	if !errors.Is(err, ErrUnsupportedHash) || !strings.Contains(err.Error(), path+":2:") {
		t.Fatalf("Reload of bad file = %v, want ErrUnsupportedHash at %s:2", err, path)
	}
	if err := u.Verify("bob", "builder"); err != nil {
		t.Errorf("bob after failed reload: %v", err)
	}

	// A vanished file too.
	os.Remove(path)
	if err := u.Reload(); err == nil {
		t.Error("Reload of a missing file succeeded")
	}
	if err := u.Verify("bob", "builder"); err != nil {
		t.Errorf("bob after missing file: %v", err)
	}
}

// A login that started before a reload finishes against the set it began with.
func TestReloadLeavesLoginInFlight(t *testing.T) {
	dir := t.TempDir()
	path := writeFile(t, dir, "alice:"+goodHash+"\n")
	u, err := LoadUsers(path)
	if err != nil {
		t.Fatal(err)
	}
	entered, release := make(chan struct{}), make(chan struct{})
	u.compare = func(hash, pwd []byte) error {
		close(entered)
		<-release
		return bcrypt.CompareHashAndPassword(hash, pwd)
	}
	done := make(chan error)
	go func() { done <- u.Verify("alice", "wonderland") }()
	<-entered

	bobHash, _ := bcrypt.GenerateFromPassword([]byte("builder"), bcrypt.MinCost)
	writeFile(t, dir, "bob:"+string(bobHash)+"\n")
	if err := u.Reload(); err != nil {
		t.Fatal(err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Errorf("login in flight across reload = %v, want nil", err)
	}
	u.compare = bcrypt.CompareHashAndPassword
	if err := u.Verify("alice", "wonderland"); !errors.Is(err, ErrBadCredentials) {
		t.Errorf("alice after reload = %v, want ErrBadCredentials", err)
	}
}

func TestDevUsers(t *testing.T) {
	u := DevUsers()
	if err := u.Verify("maggie", "secret"); err != nil {
		t.Fatalf("maggie/secret: %v", err)
	}
	if err := u.Verify("maggie", "Secret"); !errors.Is(err, ErrBadCredentials) {
		t.Errorf("wrong password: %v", err)
	}
	if err := u.Reload(); err != nil {
		t.Errorf("Reload of dev users = %v, want nil (nothing to reload)", err)
	}
}
