package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/turnstile-push/turnstile/auth"
)

// stdinWith is a file holding s, standing in for a piped stdin.
func stdinWith(t *testing.T, s string) *os.File {
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), "stdin")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Seek(0, 0); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// passwd runs "turnstile passwd args…" in process with stdin and returns
// the exit status and what it wrote to stderr.
func passwd(t *testing.T, stdin string, args ...string) (int, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := runPasswd(args, stdinWith(t, stdin), &stdout, &stderr)
	return code, stderr.String()
}

func verify(t *testing.T, path, user, pwd string) error {
	t.Helper()
	u, err := auth.LoadUsers(path)
	if err != nil {
		t.Fatalf("auth.LoadUsers(%s): %v", path, err)
	}
	return u.Verify(user, pwd)
}

func TestPasswdCreatesAFileLoadUsersReads(t *testing.T) {
	path := filepath.Join(t.TempDir(), "users.htpasswd")
	if code, out := passwd(t, "s3cret pass\n", "-cost", "4", path, "maggie"); code != 0 {
		t.Fatalf("exit %d: %s", code, out)
	}
	if err := verify(t, path, "maggie", "s3cret pass"); err != nil {
		t.Fatalf("the written password does not verify: %v", err)
	}
	if err := verify(t, path, "maggie", "s3cret pass\n"); err == nil {
		t.Fatal("the newline was kept as part of the password")
	}
	data, _ := os.ReadFile(path)
	if !strings.HasPrefix(string(data), "maggie:$2y$04$") || !strings.HasSuffix(string(data), "\n") || len(data) != len("maggie:")+60+1 {
		t.Fatalf("entry %q, want maggie:$2y$04$<53 chars>\\n as htpasswd -B writes", data)
	}
	st, _ := os.Stat(path)
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("new file mode %v, want 0600 (hashes are secrets)", st.Mode().Perm())
	}
}

func TestPasswdDefaultCost(t *testing.T) {
	path := filepath.Join(t.TempDir(), "users")
	if code, out := passwd(t, "pw", path, "ann"); code != 0 { // no newline at EOF: still one line
		t.Fatalf("exit %d: %s", code, out)
	}
	data, _ := os.ReadFile(path)
	hash := bytes.TrimSuffix(bytes.TrimPrefix(data, []byte("ann:")), []byte("\n"))
	if cost, err := bcrypt.Cost(hash); err != nil || cost != defaultPasswdCost {
		t.Fatalf("cost %d (%v), want %d", cost, err, defaultPasswdCost)
	}
	if err := verify(t, path, "ann", "pw"); err != nil {
		t.Fatal(err)
	}
}

func TestPasswdUpdatesOneUserAndKeepsTheRest(t *testing.T) {
	path := filepath.Join(t.TempDir(), "users")
	writeHtpasswd(t, path, "maggie", "bob")
	before, _ := os.ReadFile(path)
	withComment := "# staff\n" + string(before)
	if err := os.WriteFile(path, []byte(withComment), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o640); err != nil {
		t.Fatal(err)
	}
	if code, out := passwd(t, "new\n", "-cost", "4", path, "maggie"); code != 0 || !strings.Contains(out, "updated maggie") {
		t.Fatalf("exit %d: %s", code, out)
	}
	if err := verify(t, path, "maggie", "new"); err != nil {
		t.Fatalf("new password: %v", err)
	}
	if err := verify(t, path, "maggie", "maggie-pw"); !errors.Is(err, auth.ErrBadCredentials) {
		t.Fatalf("old password still works: %v", err)
	}
	if err := verify(t, path, "bob", "bob-pw"); err != nil {
		t.Fatalf("bob lost: %v", err)
	}
	after, _ := os.ReadFile(path)
	lines := strings.Split(string(after), "\n")
	if lines[0] != "# staff" || !strings.HasPrefix(lines[1], "maggie:$2y$04$") || !strings.Contains(string(after), strings.Split(string(before), "\n")[1]) {
		t.Fatalf("order, comment or bob's line not kept:\n%s", after)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o640 {
		t.Fatalf("mode %v, want the file's 0640 kept", st.Mode().Perm())
	}
	if code, out := passwd(t, "", "-cost", "4", path, "carol"); code == 0 {
		t.Fatalf("empty stdin accepted: %s", out)
	}
	if code, out := passwd(t, "c\n", "-cost", "4", path, "carol"); code != 0 || !strings.Contains(out, "added carol") {
		t.Fatalf("exit %d: %s", code, out)
	}
	for user, pwd := range map[string]string{"maggie": "new", "bob": "bob-pw", "carol": "c"} {
		if err := verify(t, path, user, pwd); err != nil {
			t.Fatalf("%s: %v", user, err)
		}
	}
	if code, out := passwd(t, "", "-delete", path, "bob"); code != 0 || !strings.Contains(out, "removed bob") {
		t.Fatalf("delete: exit %d: %s", code, out)
	}
	if err := verify(t, path, "bob", "bob-pw"); !errors.Is(err, auth.ErrBadCredentials) {
		t.Fatalf("bob still logs in after -delete: %v", err)
	}
	if code, _ := passwd(t, "", "-delete", path, "nobody"); code != 1 {
		t.Fatalf("deleting an unknown user: exit %d, want 1", code)
	}
}

func TestPasswdRefusesBadInputAndLeavesTheFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "users")
	writeHtpasswd(t, path, "maggie")
	good, _ := os.ReadFile(path)
	cases := []struct {
		name, stdin string
		args        []string
		code        int
		says        string
	}{
		{"no args", "x\n", nil, 2, "want FILE USER"},
		{"colon in user", "x\n", []string{path, "a:b"}, 2, "without ':'"},
		{"space in user", "x\n", []string{path, "a b"}, 2, "without ':'"},
		{"cost too low", "x\n", []string{"-cost", "3", path, "u"}, 2, "-cost 3"},
		{"cost too high", "x\n", []string{"-cost", "32", path, "u"}, 2, "-cost 32"},
		{"empty password", "\n", []string{path, "u"}, 1, "empty password"},
		{"73 bytes", strings.Repeat("p", 73) + "\n", []string{"-cost", "4", path, "u"}, 1, "longer than 72"},
		{"no such dir", "x\n", []string{"-cost", "4", filepath.Join(dir, "nope", "users"), "u"}, 1, "no such file"},
	}
	for _, c := range cases {
		code, out := passwd(t, c.stdin, c.args...)
		if code != c.code || !strings.Contains(out, c.says) {
			t.Errorf("%s: exit %d %q, want %d saying %q", c.name, code, out, c.code, c.says)
		}
	}
	if now, _ := os.ReadFile(path); !bytes.Equal(now, good) {
		t.Fatalf("a refused command changed the file:\n%s", now)
	}

	// A file turnstile could not load is not made worse, nor half-fixed.
	broken := string(good) + "bob:plaintext\n"
	if err := os.WriteFile(path, []byte(broken), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out := passwd(t, "x\n", "-cost", "4", path, "carol")
	if code != 1 || !strings.Contains(out, path+":2: unsupported hash") || !strings.Contains(out, "left unchanged") {
		t.Fatalf("exit %d %q, want 1 naming %s:2", code, out, path)
	}
	if now, _ := os.ReadFile(path); string(now) != broken {
		t.Fatalf("file changed:\n%s", now)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Fatalf("temporary files left behind: %v", ents)
	}
}

// TestPasswdMatchesHtpasswd checks both directions against Apache's tool:
// htpasswd -vb verifies what passwd wrote, and passwd updates a file that
// htpasswd -B made without disturbing its entries.
func TestPasswdMatchesHtpasswd(t *testing.T) {
	htpasswd, err := exec.LookPath("htpasswd")
	if err != nil {
		t.Skip("htpasswd is not installed (apt-get install apache2-utils); the format is still checked against auth.LoadUsers")
	}
	path := filepath.Join(t.TempDir(), "users")
	if out, err := exec.Command(htpasswd, "-B", "-C", "4", "-cb", path, "apache", "from-htpasswd").CombinedOutput(); err != nil {
		t.Fatalf("htpasswd -cb: %v %s", err, out)
	}
	if code, out := passwd(t, "from-turnstile\n", "-cost", "5", path, "maggie"); code != 0 {
		t.Fatalf("exit %d: %s", code, out)
	}
	for user, pwd := range map[string]string{"apache": "from-htpasswd", "maggie": "from-turnstile"} {
		if out, err := exec.Command(htpasswd, "-vb", path, user, pwd).CombinedOutput(); err != nil {
			t.Fatalf("htpasswd -vb %s: %v %s", user, err, out)
		}
		if err := verify(t, path, user, pwd); err != nil {
			t.Fatalf("LoadUsers %s: %v", user, err)
		}
	}
	if out, err := exec.Command(htpasswd, "-vb", path, "maggie", "wrong").CombinedOutput(); err == nil {
		t.Fatalf("htpasswd -vb accepted a wrong password: %s", out)
	}
}

// TestPasswdSubcommandOfTheBinary runs the built binary as an operator
// would, the password piped on stdin.
func TestPasswdSubcommandOfTheBinary(t *testing.T) {
	path := filepath.Join(t.TempDir(), "users")
	cmd := exec.Command(binaryPath, "passwd", "-cost", "4", path, "maggie")
	cmd.Stdin = strings.NewReader("piped\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if err := verify(t, path, "maggie", "piped"); err != nil {
		t.Fatal(err)
	}
}
