package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/crypto/bcrypt"

	"github.com/turnstile-push/turnstile/auth"
)

// defaultPasswdCost is bcrypt's own default (10): about 50–100 ms per login
// on one core, what every /auth attempt pays. htpasswd -B uses 5 unless -C
// says otherwise; raise it with -cost where logins are rare.
const defaultPasswdCost = bcrypt.DefaultCost

var (
	errPasswdEmpty    = errors.New("empty password")
	errPasswdMismatch = errors.New("the passwords do not match")
	errPasswdUser     = errors.New("user must be non-empty, without ':', spaces or control characters")
	errPasswdNoUser   = errors.New("no such user")
)

// runPasswd is "turnstile passwd [-cost N] [-delete] FILE USER": it adds or
// replaces USER's bcrypt entry in the htpasswd file FILE (created if
// missing), keeping every other line as it was. The password is read from
// stdin when stdin is not a terminal (one line), else prompted for twice
// without echo. The file is replaced atomically, and only once the result
// loads as a -users file.
func runPasswd(args []string, stdin *os.File, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("turnstile passwd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cost := fs.Int("cost", defaultPasswdCost, fmt.Sprintf("bcrypt cost, %d to %d; each login pays it", bcrypt.MinCost, bcrypt.MaxCost))
	del := fs.Bool("delete", false, "remove USER instead of setting a password")
	fs.Usage = func() {
		fmt.Fprintf(stderr, `Usage: turnstile passwd [-cost N] [-delete] FILE USER

Adds USER to the htpasswd file FILE (for -users), or replaces USER's password.
Entries are bcrypt, as "htpasswd -B" writes them; other users are kept.
The password comes from stdin when it is not a terminal (the first line):

  printf '%%s\n' "$PASSWORD" | turnstile passwd users.htpasswd maggie

otherwise it is asked for twice, without echo. A running turnstile reloads
the file on SIGHUP.

`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() != 2 {
		fmt.Fprintln(stderr, "turnstile passwd: want FILE USER (see turnstile passwd -h)")
		return 2
	}
	path, user := fs.Arg(0), fs.Arg(1)
	if !validHtpasswdUser(user) {
		fmt.Fprintf(stderr, "turnstile passwd: user %q: %v\n", user, errPasswdUser)
		return 2
	}
	if *cost < bcrypt.MinCost || *cost > bcrypt.MaxCost {
		fmt.Fprintf(stderr, "turnstile passwd: -cost %d: want %d to %d\n", *cost, bcrypt.MinCost, bcrypt.MaxCost)
		return 2
	}
	var entry []byte
	if !*del {
		pwd, err := readPassword(stdin, stderr, user)
		if err != nil {
			fmt.Fprintf(stderr, "turnstile passwd: %v\n", err)
			return 1
		}
		if entry, err = htpasswdEntry(user, pwd, *cost); err != nil {
			fmt.Fprintf(stderr, "turnstile passwd: %v\n", err)
			return 1
		}
	}
	verb, err := updateHtpasswd(path, user, entry)
	if err != nil {
		fmt.Fprintf(stderr, "turnstile passwd: %v\n", err)
		return 1
	}
	fmt.Fprintf(stderr, "turnstile passwd: %s %s in %s (a running turnstile reloads it on SIGHUP)\n", verb, user, path)
	return 0
}

// validHtpasswdUser is what auth.LoadUsers accepts as a name.
func validHtpasswdUser(u string) bool {
	return u != "" && !strings.ContainsFunc(u, func(r rune) bool { return r == ':' || r <= ' ' || r == 0x7f })
}

// htpasswdEntry is "user:$2y$cost$…", the form htpasswd -B writes. Go's
// bcrypt writes $2a$; the hash is the same, and $2y$ is what Apache's tools
// and PHP expect to see.
func htpasswdEntry(user string, pwd []byte, cost int) ([]byte, error) {
	if len(pwd) > auth.MaxPasswordBytes {
		return nil, auth.ErrPasswordTooLong
	}
	hash, err := bcrypt.GenerateFromPassword(pwd, cost)
	if err != nil {
		return nil, err
	}
	if bytes.HasPrefix(hash, []byte("$2a$")) {
		hash[2] = 'y'
	}
	return append([]byte(user+":"), hash...), nil
}

// readPassword reads one line from stdin, or prompts twice without echo
// when stdin is a terminal.
func readPassword(stdin *os.File, prompt io.Writer, user string) ([]byte, error) {
	if !isTerminal(stdin) {
		line, err := bufio.NewReaderSize(stdin, 256).ReadSlice('\n')
		if err != nil && !(errors.Is(err, io.EOF) && len(line) > 0) {
			if errors.Is(err, io.EOF) {
				return nil, fmt.Errorf("%w on stdin", errPasswdEmpty)
			}
			if errors.Is(err, bufio.ErrBufferFull) {
				return nil, auth.ErrPasswordTooLong
			}
			return nil, fmt.Errorf("reading the password from stdin: %w", err)
		}
		pwd := trimEOL(line)
		if len(pwd) == 0 {
			return nil, fmt.Errorf("%w on stdin", errPasswdEmpty)
		}
		return bytes.Clone(pwd), nil
	}
	fmt.Fprintf(prompt, "New password for %s: ", user)
	first, err := readNoEcho(stdin)
	fmt.Fprintln(prompt)
	if err != nil {
		return nil, err
	}
	if len(first) == 0 {
		return nil, errPasswdEmpty
	}
	fmt.Fprint(prompt, "Retype it: ")
	second, err := readNoEcho(stdin)
	fmt.Fprintln(prompt)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(first, second) {
		return nil, errPasswdMismatch
	}
	return first, nil
}

// updateHtpasswd sets user's line to entry (nil: removes it) in path and
// replaces the file atomically, after checking that the result loads. It
// says what it did: "added", "updated" or "removed".
func updateHtpasswd(path, user string, entry []byte) (string, error) {
	old, err := os.ReadFile(path)
	exists := err == nil
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	data, found := setHtpasswdLine(old, user, entry)
	verb := "updated"
	switch {
	case entry == nil && !found:
		return "", fmt.Errorf("%s: %s: %w", path, user, errPasswdNoUser)
	case entry == nil:
		verb = "removed"
	case !found:
		verb = "added"
	}
	mode := os.FileMode(0o600) // bcrypt hashes are secrets too
	var st os.FileInfo
	if exists {
		if st, err = os.Stat(path); err != nil {
			return "", err
		}
		mode = st.Mode().Perm()
	}
	err = writeFileAtomic(path, data, mode, st, func(tmp string) error {
		if _, err := auth.LoadUsers(tmp); err != nil {
			return fmt.Errorf("%s left unchanged: the result would not load as -users: %s", path, strings.ReplaceAll(err.Error(), tmp, path))
		}
		return nil
	})
	return verb, err
}

// setHtpasswdLine replaces the first line of user with entry (or drops it
// when entry is nil) and drops later duplicates; every other line, comment
// and line ending is kept. A new user is appended.
func setHtpasswdLine(data []byte, user string, entry []byte) (out []byte, found bool) {
	prefix := []byte(user + ":")
	for rest := data; len(rest) > 0; {
		line := rest
		if i := bytes.IndexByte(rest, '\n'); i >= 0 {
			line = rest[:i+1]
		}
		rest = rest[len(line):]
		if !bytes.HasPrefix(line, prefix) {
			out = append(out, line...)
			continue
		}
		if !found && entry != nil {
			out = append(out, entry...)
			if bytes.HasSuffix(line, []byte("\r\n")) {
				out = append(out, '\r')
			}
			out = append(out, '\n')
		}
		found = true
	}
	if !found && entry != nil {
		if len(out) > 0 && out[len(out)-1] != '\n' {
			out = append(out, '\n')
		}
		out = append(out, entry...)
		out = append(out, '\n')
	}
	return out, found
}

// writeFileAtomic writes data to a temporary file beside path, runs check
// on it, and renames it over path, so that a reader (a SIGHUP reload) sees
// the old file or the new one, never half of one. The new file gets mode,
// and the owner of old when we are allowed to set it.
func writeFileAtomic(path string, data []byte, mode os.FileMode, old os.FileInfo, check func(tmp string) error) error {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // a no-op once renamed
	if _, err = f.Write(data); err == nil {
		err = f.Chmod(mode)
	}
	if err == nil && old != nil {
		err = chownLike(f, old)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := check(tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync() // make the rename durable; not all filesystems allow it
		d.Close()
	}
	return nil
}

// trimEOL drops a trailing "\n" or "\r\n".
func trimEOL(line []byte) []byte {
	return bytes.TrimSuffix(bytes.TrimSuffix(line, []byte("\n")), []byte("\r"))
}
