package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gobwas/ws"
)

// deployFile is a file of the repository's deploy/ folder.
func deployFile(t *testing.T, name string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "deploy", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// replaceOnce replaces old by new in s and fails unless old occurs exactly
// once, so that the sample and its test cannot drift apart silently.
func replaceOnce(t *testing.T, s, old, new string) string {
	t.Helper()
	if n := strings.Count(s, old); n != 1 {
		t.Fatalf("deploy sample: %q occurs %d times, want once", old, n)
	}
	return strings.Replace(s, old, new, 1)
}

// TestSystemdUnitVerifies runs systemd-analyze on deploy/turnstile.service
// (with ExecStart pointing at the built binary): no warning at all, and an
// exposure score of at most 2.0 ("OK") from its offline security audit.
func TestSystemdUnitVerifies(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed (Debian package systemd); the unit is not checked here")
	}
	unit := deployFile(t, "turnstile.service")
	for _, want := range []string{"LimitNOFILE=1048576", "Restart=on-failure", "NoNewPrivileges=yes",
		"ProtectSystem=strict", "PrivateTmp=yes", "EnvironmentFile=/etc/turnstile/turnstile.env", "ExecReload=/bin/kill -HUP $MAINPID"} {
		if !strings.Contains(unit, "\n"+want+"\n") {
			t.Errorf("unit lacks %s", want)
		}
	}
	unit = replaceOnce(t, unit, "ExecStart=/usr/local/bin/turnstile", "ExecStart="+binaryPath)
	path := filepath.Join(t.TempDir(), "turnstile.service")
	if err := os.WriteFile(path, []byte(unit), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", "--man=no", path).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		// verify exits 0 on unknown keys and bad values: any output is a finding.
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
	out, err = exec.Command(analyze, "security", "--offline=true", "--threshold=20", path).CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze security --threshold=20 (exposure over 2.0): %v\n%s", err, out)
	}
	t.Logf("%s", lastLine(out))
}

func lastLine(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return lines[len(lines)-1]
}

// selfSigned writes a certificate for 127.0.0.1 and push.example.com and
// its key, and returns a pool that trusts it.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "push.example.com"},
		DNSNames:              []string{"push.example.com"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// freePort is a loopback port nobody listened on a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startNginx runs Debian's nginx with deploy/nginx.conf in front of s, on
// loopback port, with everything under a temporary prefix, and (when
// the test runs as root) as the unprivileged user nobody. It returns the
// https base URL, the TLS trust pool and the access log's path.
func startNginx(t *testing.T, port int, s *testServer) (base string, pool *x509.CertPool, accessLog string) {
	t.Helper()
	prefix := t.TempDir()
	certFile, keyFile, pool := selfSigned(t, prefix)
	accessLog = filepath.Join(prefix, "access.log")
	httpAddr := strings.TrimPrefix(s.HTTP, "http://")
	wsAddr := strings.TrimSuffix(strings.TrimPrefix(s.WS, "ws://"), "/ws")

	site := deployFile(t, "nginx.conf")
	site = replaceOnce(t, site, "listen 443 ssl;", fmt.Sprintf("listen 127.0.0.1:%d ssl;", port))
	site = replaceOnce(t, site, "/etc/ssl/certs/push.example.com.pem", certFile)
	site = replaceOnce(t, site, "/etc/ssl/private/push.example.com.key", keyFile)
	site = replaceOnce(t, site, "/var/log/nginx/turnstile.access.log", accessLog)
	site = replaceOnce(t, site, "server 127.0.0.1:8080;", "server "+httpAddr+";")
	site = replaceOnce(t, site, "server 127.0.0.1:8081;", "server "+wsAddr+";")
	// The sample goes inside http {}, as in Debian's conf.d; the rest keeps
	// nginx off every system path.
	main := fmt.Sprintf(`daemon off;
worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log info;
events { worker_connections 256; }
http {
    client_body_temp_path %[1]s/client_body;
    proxy_temp_path %[1]s/proxy;
    fastcgi_temp_path %[1]s/fastcgi;
    uwsgi_temp_path %[1]s/uwsgi;
    scgi_temp_path %[1]s/scgi;
    access_log %[1]s/other.log;
    include %[1]s/turnstile.conf;
}
`, prefix)
	for name, data := range map[string]string{"turnstile.conf": site, "nginx.conf": main} {
		if err := os.WriteFile(filepath.Join(prefix, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(nginxPath, "-p", prefix, "-c", filepath.Join(prefix, "nginx.conf"), "-e", filepath.Join(prefix, "error.log"))
	if os.Geteuid() == 0 {
		const nobody = 65534
		if err := filepath.Walk(prefix, func(p string, _ os.FileInfo, err error) error {
			if err != nil {
				return err
			}
			return os.Chown(p, nobody, nobody)
		}); err != nil {
			t.Fatal(err)
		}
		// t.TempDir's parent is 0700 root: let nobody through to the prefix.
		if err := os.Chmod(filepath.Dir(prefix), 0o711); err != nil {
			t.Fatal(err)
		}
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	errorLog := func() string {
		b, _ := os.ReadFile(filepath.Join(prefix, "error.log"))
		return out.String() + string(b)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("nginx error log:\n%s", errorLog())
		}
	})
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
		if err == nil {
			c.Close()
			break
		}
		select {
		case err := <-exited:
			t.Fatalf("nginx exited: %v\n%s", err, errorLog())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("nginx not listening on %d within 15s\n%s", port, errorLog())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Sprintf("https://127.0.0.1:%d", port), pool, accessLog
}

const nginxPath = "/usr/sbin/nginx"

// TestBehindNginxWithTLS proves the README's proxy section: through nginx
// with deploy/nginx.conf and TLS, a client logs in, takes a ticket whose
// URL is the public wss:// one, upgrades over wss://, and receives a push;
// the Origin check still applies through the proxy, /metrics stays inside,
// and no ticket reaches nginx's access log.
func TestBehindNginxWithTLS(t *testing.T) {
	requireTool(t, nginxPath, "apt-get install nginx")
	port := freePort(t)
	const app = "https://app.example.com"
	s := startBinary(t, "-trusted-proxies", "127.0.0.1", "-origins", app,
		"-ws-url", fmt.Sprintf("wss://127.0.0.1:%d/ws", port))
	base, pool, accessLog := startNginx(t, port, s)
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	call := func(method, path, bearer, body string, out any) int {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s through nginx: %v", method, path, err)
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		if out != nil && resp.StatusCode == http.StatusOK {
			if err := json.Unmarshal(data, out); err != nil {
				t.Fatalf("%s: %v in %s", path, err, data)
			}
		}
		return resp.StatusCode
	}

	var login struct{ Token string }
	if code := call("POST", "/auth", "", `{"user":"maggie","pwd":"secret"}`, &login); code != 200 || login.Token == "" {
		t.Fatalf("POST /auth through nginx: %d", code)
	}
	var tkt struct{ Ticket, URL string }
	if code := call("GET", "/ws_ticket", login.Token, "", &tkt); code != 200 {
		t.Fatalf("GET /ws_ticket through nginx: %d", code)
	}
	if want := base[len("https"):] + "/ws?ticket=" + tkt.Ticket; tkt.URL != "wss"+want {
		t.Fatalf("ticket URL %q, want the public wss%s", redact(tkt.URL), redact(want))
	}
	if code := call("GET", "/metrics", "", "", nil); code != 404 {
		t.Errorf("/metrics through nginx: %d, want 404 (scrape it from inside)", code)
	}

	dialer := func(origin string) ws.Dialer {
		return ws.Dialer{TLSConfig: &tls.Config{RootCAs: pool}, Timeout: 10 * time.Second,
			Header: ws.HandshakeHeaderHTTP(http.Header{"Origin": {origin}})}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	// The Origin header crosses the proxy: a foreign page is refused
	// before the ticket is spent...
	d := dialer("https://evil.example.com")
	if _, _, _, err := d.Dial(ctx, tkt.URL); !errors.Is(err, ws.StatusError(403)) {
		t.Fatalf("upgrade from a foreign Origin through nginx: %v, want 403", err)
	}
	// ...and the app's page gets in with the same ticket.
	d = dialer(app)
	conn, br, _, err := d.Dial(ctx, tkt.URL)
	if err != nil {
		t.Fatalf("wss:// upgrade through nginx: %v", err)
	}
	defer conn.Close()
	c := &wsClient{conn: conn, rw: conn}
	if br != nil {
		c.rw = readAhead{io.MultiReader(br, conn), conn}
	}
	if w := c.read(t); w["type"] != "welcome" || w["user"] != "maggie" {
		t.Fatalf("welcome through nginx: %v", w)
	}
	var pub struct{ Recipients int }
	if code := call("POST", "/publish", s.PublishKey, `{"user":"maggie","data":"through-nginx"}`, &pub); code != 200 || pub.Recipients != 1 {
		t.Fatalf("POST /publish through nginx: %d, recipients %d", code, pub.Recipients)
	}
	if m := c.read(t); m["type"] != "message" || m["data"] != "through-nginx" {
		t.Fatalf("push through nginx: %v", m)
	}

	conn.Close()
	time.Sleep(200 * time.Millisecond) // nginx logs a WebSocket when it ends
	logged, err := os.ReadFile(accessLog)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(logged), `"GET /ws" 101`) || !strings.Contains(string(logged), `"POST /auth" 200`) {
		t.Errorf("access log lacks the upgrade or the login:\n%s", logged)
	}
	if strings.Contains(string(logged), tkt.Ticket) || strings.Contains(string(logged), "ticket=") {
		t.Fatalf("a ticket reached nginx's access log:\n%s", logged)
	}
}
