// Package kubeenv starts a real Kubernetes API server for the k8s module's
// tests: an etcd (Debian's etcd-server) and a kube-apiserver built from the
// tools module k8s/tools/kube-apiserver (k8s.io/kubernetes from the Go module
// proxy), both on free loopback ports with their data in the test's temp
// dir, stopped when the test ends. It is the module's one place that starts
// servers.
//
// No controllers run (no kube-controller-manager, no scheduler, no kubelet):
// objects are stored and validated, nothing reconciles them. That is what a
// server-side dry-run apply needs.
//
// A missing go or etcd skips the test with a loud reason, and fails it when
// CI is set (.ci/run installs both): the same rule as pkg/testenv.Missing,
// copied here because this module is outside the go.work workspace.
package kubeenv

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"k8s.io/client-go/rest"
)

// kubernetesModule is the module the tools module requires; its version is
// the server's version, stamped into the binary.
const kubernetesModule = "k8s.io/kubernetes"

// Cluster is a running etcd + kube-apiserver owned by one test.
type Cluster struct {
	// Config reaches the server as an admin (group system:masters), with
	// TLS verified against the server's self-generated CA.
	Config *rest.Config
	// URL is the server's https://127.0.0.1:PORT.
	URL string
	// Version is the version stamped into kube-apiserver (e.g. "v1.34.4"),
	// the one /version must report.
	Version string
	// Ready is the time from starting kube-apiserver to /readyz answering ok.
	Ready time.Duration

	etcdReady       time.Duration
	etcd, apiserver *proc
}

// Start builds kube-apiserver (a no-op once built), starts etcd and
// kube-apiserver, waits until /readyz is ok and stops both when t ends.
func Start(t testing.TB) *Cluster {
	t.Helper()
	etcdBin := need(t, "etcd", "Debian's etcd-server; .ci/run installs it")
	bin, version := Build(t)

	dir := t.TempDir()
	c := &Cluster{Version: version}
	t.Cleanup(func() {
		start := time.Now()
		c.stop()
		if d := time.Since(start); d > 5*time.Second {
			t.Logf("stopping kube-apiserver and etcd took %s", d.Round(time.Millisecond))
		}
	})

	etcdStart := time.Now()
	etcdURL, err := c.startEtcd(etcdBin, filepath.Join(dir, "etcd"))
	if err != nil {
		t.Fatal(err)
	}
	c.etcdReady = time.Since(etcdStart)
	if err := c.startAPIServer(bin, etcdURL, dir); err != nil {
		t.Fatal(err)
	}
	t.Logf("etcd ready in %s; kube-apiserver %s ready at %s %s after its start",
		c.etcdReady.Round(time.Millisecond), c.Version, c.URL, c.Ready.Round(time.Millisecond))
	return c
}

// Build builds kube-apiserver from k8s/tools/kube-apiserver into the user's
// cache dir, e.g. ~/.cache/liqstream/kube-apiserver-v1.34.4, kept across runs
// and rebuilt when it is missing or the tools module changed, and returns its
// path and the version stamped into it. The first build on a machine takes
// minutes (thousands of packages); later ones hit Go's build cache.
func Build(t testing.TB) (bin, version string) {
	t.Helper()
	goBin := goCommand()
	if goBin == "" {
		missing(t, "the go command is not on PATH; it builds kube-apiserver from k8s/tools/kube-apiserver")
	}
	toolsDir, err := toolsModuleDir()
	if err != nil {
		t.Fatal(err)
	}
	version, err = requiredVersion(filepath.Join(toolsDir, "go.mod"), kubernetesModule)
	if err != nil {
		t.Fatal(err)
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	cache = filepath.Join(cache, "liqstream")
	if err := os.MkdirAll(cache, 0o755); err != nil {
		t.Fatal(err)
	}
	bin = filepath.Join(cache, "kube-apiserver-"+version)

	// Test binaries of several packages may build at once: one at a time.
	unlock, err := lockFile(bin + ".lock")
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()

	major, minor, ok := majorMinor(version)
	if !ok {
		t.Fatalf("%s: cannot read major.minor of %s %s", toolsDir, kubernetesModule, version)
	}
	// Without the stamp the server reports v0.0.0-master and Helm's
	// kubeVersion checks (">=1.30.0-0") fail against it.
	ldflags := strings.Join([]string{
		"-X k8s.io/component-base/version.gitVersion=" + version,
		"-X k8s.io/component-base/version.gitMajor=" + major,
		"-X k8s.io/component-base/version.gitMinor=" + minor,
		"-X k8s.io/component-base/version.gitTreeState=clean",
	}, " ")
	// go build is itself a no-op when nothing changed, but even that takes
	// seconds for kube-apiserver's ~2000 packages: a stamp of the inputs
	// (the tools module's go.mod and go.sum, the flags) beside the binary
	// skips it.
	stamp, err := inputsStamp(toolsDir, ldflags)
	if err != nil {
		t.Fatal(err)
	}
	if old, err := os.ReadFile(bin + ".stamp"); err == nil && string(old) == stamp {
		if _, err := os.Stat(bin); err == nil {
			return bin, version
		}
	}
	start := time.Now()
	cmd := exec.Command(goBin, "build", "-o", bin, "-ldflags", ldflags, kubernetesModule+"/cmd/kube-apiserver")
	cmd.Dir = toolsDir
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=readonly")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build kube-apiserver %s in %s: %v\n%s", version, toolsDir, err, out)
	}
	if err := os.WriteFile(bin+".stamp", []byte(stamp), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("built kube-apiserver %s in %s into %s (kept for later runs)", version, time.Since(start).Round(time.Second), bin)
	return bin, version
}

// inputsStamp hashes what the kube-apiserver binary is built from.
func inputsStamp(toolsDir, ldflags string) (string, error) {
	h := sha256.New()
	for _, f := range []string{"go.mod", "go.sum"} {
		b, err := os.ReadFile(filepath.Join(toolsDir, f))
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%s %d\n", f, len(b))
		h.Write(b)
	}
	fmt.Fprintf(h, "ldflags %s\n%s/%s\n", ldflags, runtime.GOOS, runtime.GOARCH)
	return hex.EncodeToString(h.Sum(nil)), nil
}

// Server-side knobs of the one admin user.
const (
	adminUser  = "kubeenv-admin"
	adminGroup = "system:masters" // RBAC lets it do anything
)

func (c *Cluster) startEtcd(bin, dataDir string) (string, error) {
	clientPort, peerPort := freePort(), freePort()
	if clientPort == 0 || peerPort == 0 {
		return "", errors.New("no free loopback port for etcd")
	}
	clientURL := "http://" + hostPort(clientPort)
	peerURL := "http://" + hostPort(peerPort)
	p, err := startProc("etcd", bin,
		"--name", "kubeenv",
		"--data-dir", dataDir,
		"--listen-client-urls", clientURL,
		"--advertise-client-urls", clientURL,
		"--listen-peer-urls", peerURL,
		"--initial-advertise-peer-urls", peerURL,
		"--initial-cluster", "kubeenv="+peerURL,
		"--initial-cluster-state", "new",
		"--logger", "zap", "--log-outputs", "stderr", "--log-level", "error",
	)
	if err != nil {
		return "", err
	}
	c.etcd = p
	err = p.waitHTTP(http.DefaultClient, clientURL+"/health", func(code int, body []byte) bool {
		return code == http.StatusOK && bytes.Contains(body, []byte(`"health":"true"`))
	}, 30*time.Second)
	if err != nil {
		return "", err
	}
	return clientURL, nil
}

func (c *Cluster) startAPIServer(bin, etcdURL, dir string) error {
	certDir := filepath.Join(dir, "certs")
	saKey, saPub := filepath.Join(dir, "sa.key"), filepath.Join(dir, "sa.pub")
	if err := writeKeyPair(saKey, saPub); err != nil {
		return err
	}
	token := randomHex(32)
	tokens := filepath.Join(dir, "tokens.csv")
	// token,user,uid,"group1,group2"
	line := fmt.Sprintf("%s,%s,%s,%q\n", token, adminUser, adminUser, adminGroup)
	if err := os.WriteFile(tokens, []byte(line), 0o600); err != nil {
		return err
	}
	port := freePort()
	if port == 0 {
		return errors.New("no free loopback port for kube-apiserver")
	}
	c.URL = "https://" + hostPort(port)

	start := time.Now()
	p, err := startProc("kube-apiserver", bin,
		"--etcd-servers", etcdURL,
		"--etcd-prefix", "/registry",
		"--bind-address", "127.0.0.1",
		"--advertise-address", "127.0.0.1",
		"--secure-port", strconv.Itoa(port),
		"--cert-dir", certDir,
		"--token-auth-file", tokens,
		"--anonymous-auth=false",
		"--authorization-mode", "RBAC",
		"--service-account-key-file", saPub,
		"--service-account-signing-key-file", saKey,
		"--service-account-issuer", "https://kubernetes.default.svc.cluster.local",
		"--service-cluster-ip-range", "10.96.0.0/16",
		// No endpoints of a "kubernetes" Service for a server nobody else reaches.
		"--endpoint-reconciler-type", "none",
		"--profiling=false",
		"--v", "0",
	)
	if err != nil {
		return err
	}
	c.apiserver = p

	// The server writes its self-signed serving cert and its CA (one file)
	// into --cert-dir before it listens; clients trust that CA.
	deadline := time.Now().Add(90 * time.Second)
	crt := filepath.Join(certDir, "apiserver.crt")
	var caData []byte
	pool := x509.NewCertPool()
	for {
		b, err := os.ReadFile(crt)
		if err == nil && bytes.Count(b, []byte("END CERTIFICATE")) >= 2 && pool.AppendCertsFromPEM(b) {
			caData = b
			break
		}
		if err := p.exitedOrLate(deadline, "it to write "+crt); err != nil {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
	client := &http.Client{
		Timeout: 5 * time.Second,
		Transport: &bearerTransport{token: token, next: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"},
		}},
	}
	readyz := func(code int, body []byte) bool { return code == http.StatusOK }
	if err := p.waitHTTP(client, c.URL+"/readyz", readyz, time.Until(deadline)); err != nil {
		return err
	}
	c.Ready = time.Since(start)

	c.Config = &rest.Config{
		Host:            c.URL,
		BearerToken:     token,
		TLSClientConfig: rest.TLSClientConfig{CAData: caData, ServerName: "127.0.0.1"},
		QPS:             -1, // no client-side throttling against a private server
		Timeout:         30 * time.Second,
		UserAgent:       "liqstream-kubeenv",
	}
	return nil
}

// stop ends kube-apiserver, then etcd: SIGTERM, then SIGKILL if slow.
func (c *Cluster) stop() {
	c.apiserver.stop()
	c.etcd.stop()
}

type bearerTransport struct {
	token string
	next  http.RoundTripper
}

func (b *bearerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.next.RoundTrip(r)
}

// proc is a server process whose output is kept for error messages.
type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	out  *tail
}

func startProc(name, bin string, args ...string) (*proc, error) {
	p := &proc{name: name, done: make(chan struct{}), out: &tail{max: 64 << 10}}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	p.cmd.WaitDelay = 5 * time.Second
	// If the test binary dies (a timeout panic skips Cleanup), so does the server.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() { p.cmd.Wait(); close(p.done) }()
	return p, nil
}

// waitHTTP polls url until ok accepts the answer, the process exits or
// timeout passes. Polling is the only readiness signal these servers give.
func (p *proc) waitHTTP(client *http.Client, url string, ok func(code int, body []byte) bool, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	last := "no answer yet"
	for {
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := client.Do(req)
		if err == nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
			if ok(resp.StatusCode, body) {
				cancel()
				return nil
			}
			last = fmt.Sprintf("%s: %s", resp.Status, bytes.TrimSpace(body))
		} else {
			last = err.Error()
		}
		cancel()
		if err := p.exitedOrLate(deadline, url+" (last: "+last+")"); err != nil {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (p *proc) exitedOrLate(deadline time.Time, what string) error {
	select {
	case <-p.done:
		return fmt.Errorf("%s exited (%v) before %s; its output:\n%s", p.name, p.cmd.ProcessState, what, p.out)
	default:
	}
	if time.Now().After(deadline) {
		return fmt.Errorf("%s: timed out waiting for %s; its output:\n%s", p.name, what, p.out)
	}
	return nil
}

func (p *proc) stop() {
	if p == nil {
		return
	}
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
}

// tail keeps the last max bytes written to it.
type tail struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (t *tail) Write(b []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, b...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(b), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}

func writeKeyPair(keyFile, pubFile string) error {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return err
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return err
	}
	return os.WriteFile(pubFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o644)
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// freePort returns a loopback port that was free a moment ago (etcd and
// kube-apiserver cannot listen on port 0 and report it), or 0.
func freePort() int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func hostPort(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }

// toolsModuleDir finds k8s/tools/kube-apiserver from this source file, or
// from the working directory up.
func toolsModuleDir() (string, error) {
	rel := filepath.Join("tools", "kube-apiserver", "go.mod")
	if _, file, _, ok := runtime.Caller(0); ok && filepath.IsAbs(file) {
		root := filepath.Join(filepath.Dir(file), "..", "..")
		if _, err := os.Stat(filepath.Join(root, rel)); err == nil {
			return filepath.Join(root, "tools", "kube-apiserver"), nil
		}
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := wd; ; d = filepath.Dir(d) {
		for _, root := range []string{d, filepath.Join(d, "k8s")} {
			if _, err := os.Stat(filepath.Join(root, rel)); err == nil {
				return filepath.Join(root, "tools", "kube-apiserver"), nil
			}
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("k8s/%s not found above %s", rel, wd)
		}
	}
}

// requiredVersion reads the version of module from a go.mod's require lines.
func requiredVersion(goMod, module string) (string, error) {
	f, err := os.Open(goMod)
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(strings.TrimPrefix(strings.TrimSpace(sc.Text()), "require "))
		if len(fields) >= 2 && fields[0] == module && strings.HasPrefix(fields[1], "v") {
			return fields[1], nil
		}
	}
	if err := sc.Err(); err != nil {
		return "", err
	}
	return "", fmt.Errorf("%s: no require of %s", goMod, module)
}

// majorMinor splits "v1.34.4" into "1" and "34".
func majorMinor(v string) (string, string, bool) {
	parts := strings.SplitN(strings.TrimPrefix(v, "v"), ".", 3)
	if len(parts) < 3 {
		return "", "", false
	}
	return parts[0], parts[1], true
}

func goCommand() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	if p := filepath.Join(runtime.GOROOT(), "bin", "go"); runtime.GOROOT() != "" {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

func lockFile(path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return func() { syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() }, nil
}

func need(t testing.TB, binary, how string) string {
	t.Helper()
	p, err := exec.LookPath(binary)
	if err != nil {
		missing(t, fmt.Sprintf("%s is not installed (%s); this test needs the real server", binary, how))
	}
	return p
}

// missing skips the test, loudly, for a part that is not installed; under CI
// (CI set) it fails it instead, since .ci/run installs every part and a
// skipped test there would pass silently. (pkg/testenv.Missing's rule.)
func missing(t testing.TB, why string) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("MISSING under CI: %s", why)
	}
	t.Skipf("SKIPPED: %s", why)
}
