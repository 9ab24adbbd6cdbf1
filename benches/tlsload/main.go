// Command tlsload measures full mTLS handshakes against one server.
//
// Each of -c goroutines loops: connect, full TLS 1.3 handshake presenting a
// client certificate (no session resumption), one "GET / HTTP/1.1" with
// "Connection: close", read the response and then the connection to its end
// (the server closes first, so the client keeps no TIME_WAIT ports), close.
//
// The server's chain is verified against -ca and its leaf must carry exactly
// one URI SAN, equal to -spiffe (SPIFFE X.509-SVID rules: no host names are
// checked). The run lasts -d, or until -n connections were attempted. It
// prints one JSON object on stdout: counts of successes and failures by
// kind, the first error, rates, latencies and what was negotiated.
package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

type options struct {
	addr     string
	caFile   string
	certFile string
	keyFile  string
	spiffeID string
	body     string
	curves   string
	conns    int
	total    int64
	duration time.Duration
	timeout  time.Duration
}

// worker is one goroutine's tally; merged at the end.
type worker struct {
	ok        int64
	failures  map[string]int64
	firstErr  string
	latencies []time.Duration
	state     tls.ConnectionState
}

type report struct {
	OK               int64            `json:"ok"`
	Failed           int64            `json:"failed"`
	Failures         map[string]int64 `json:"failures"`
	FirstError       string           `json:"first_error,omitempty"`
	Seconds          float64          `json:"seconds"`
	Rate             float64          `json:"rate"`
	ClientCPUSeconds float64          `json:"client_cpu_seconds"`
	P50Micros        float64          `json:"p50_us"`
	P99Micros        float64          `json:"p99_us"`
	Connections      int              `json:"connections"`
	Version          string           `json:"tls_version,omitempty"`
	Group            string           `json:"group,omitempty"`
	Cipher           string           `json:"cipher,omitempty"`
	ALPN             string           `json:"alpn,omitempty"`
	PeerID           string           `json:"peer_id,omitempty"`
}

// failure is an error tagged with the step that failed.
type failure struct {
	kind string
	err  error
}

func (f *failure) Error() string { return f.kind + ": " + f.err.Error() }

func fail(kind string, err error) error { return &failure{kind, err} }

func main() {
	opts := parseFlags()
	cfg, err := tlsConfig(opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, "tlsload:", err)
		os.Exit(2)
	}
	rep := run(opts, cfg)
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(rep); err != nil {
		fmt.Fprintln(os.Stderr, "tlsload:", err)
		os.Exit(1)
	}
	if rep.OK == 0 {
		os.Exit(1)
	}
}

func parseFlags() options {
	var o options
	flag.StringVar(&o.addr, "addr", "127.0.0.1:8443", "server host:port")
	flag.StringVar(&o.caFile, "ca", "", "PEM root certificate(s) to verify the server against")
	flag.StringVar(&o.certFile, "cert", "", "PEM client certificate chain (leaf first)")
	flag.StringVar(&o.keyFile, "key", "", "PEM client private key")
	flag.StringVar(&o.spiffeID, "spiffe", "", "the server's expected SPIFFE ID (its one URI SAN)")
	flag.StringVar(&o.body, "body", "hello\n", "expected response body")
	flag.StringVar(&o.curves, "curves", "X25519", "key exchange groups offered, comma-separated: "+
		"X25519, P256, X25519MLKEM768 (empty: Go's defaults)")
	flag.IntVar(&o.conns, "c", 16, "concurrent connections (goroutines)")
	flag.Int64Var(&o.total, "n", 0, "stop after this many connections (0: run for -d)")
	flag.DurationVar(&o.duration, "d", 10*time.Second, "duration")
	flag.DurationVar(&o.timeout, "timeout", 5*time.Second, "per-connection timeout")
	flag.Parse()
	if o.caFile == "" || o.certFile == "" || o.keyFile == "" || o.spiffeID == "" {
		fmt.Fprintln(os.Stderr, "tlsload: -ca, -cert, -key and -spiffe are required")
		flag.Usage()
		os.Exit(2)
	}
	if o.conns < 1 {
		o.conns = 1
	}
	return o
}

var curveNames = map[string]tls.CurveID{
	"X25519":         tls.X25519,
	"P256":           tls.CurveP256,
	"X25519MLKEM768": tls.X25519MLKEM768,
}

func parseCurves(list string) ([]tls.CurveID, error) {
	var out []tls.CurveID
	for _, name := range strings.Split(list, ",") {
		name = strings.TrimSpace(name)
		if name == "" {
			continue
		}
		id, ok := curveNames[name]
		if !ok {
			return nil, fmt.Errorf("unknown curve %q", name)
		}
		out = append(out, id)
	}
	return out, nil
}

// tlsConfig: TLS 1.3 only, client certificate, no session cache (every
// handshake is a full one), ALPN http/1.1, SPIFFE verification of the server.
func tlsConfig(o options) (*tls.Config, error) {
	pem, err := os.ReadFile(o.caFile)
	if err != nil {
		return nil, err
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s: no certificate found", o.caFile)
	}
	cert, err := tls.LoadX509KeyPair(o.certFile, o.keyFile)
	if err != nil {
		return nil, err
	}
	curves, err := parseCurves(o.curves)
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		MinVersion:             tls.VersionTLS13,
		MaxVersion:             tls.VersionTLS13,
		Certificates:           []tls.Certificate{cert},
		NextProtos:             []string{"http/1.1"},
		CurvePreferences:       curves,
		SessionTicketsDisabled: true,
		ClientSessionCache:     nil,
		// Host names are not checked: VerifyConnection checks the chain and the
		// SPIFFE ID instead, as SPIFFE clients do.
		InsecureSkipVerify: true,
		VerifyConnection:   spiffeVerifier(roots, o.spiffeID),
	}, nil
}

func spiffeVerifier(roots *x509.CertPool, want string) func(tls.ConnectionState) error {
	return func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return errors.New("server sent no certificate")
		}
		leaf := cs.PeerCertificates[0]
		inter := x509.NewCertPool()
		for _, c := range cs.PeerCertificates[1:] {
			inter.AddCert(c)
		}
		_, err := leaf.Verify(x509.VerifyOptions{
			Roots:         roots,
			Intermediates: inter,
			KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		})
		if err != nil {
			return err
		}
		if len(leaf.URIs) != 1 {
			return fmt.Errorf("server leaf has %d URI SANs, want 1", len(leaf.URIs))
		}
		if got := leaf.URIs[0].String(); got != want {
			return fmt.Errorf("server is %s, want %s", got, want)
		}
		return nil
	}
}

func run(o options, cfg *tls.Config) report {
	ctx, cancel := context.WithTimeout(context.Background(), o.duration)
	defer cancel()
	var attempts atomic.Int64
	workers := make([]*worker, o.conns)
	var wg sync.WaitGroup
	cpu0 := cpuSeconds()
	start := time.Now()
	for i := range workers {
		w := &worker{failures: map[string]int64{}}
		workers[i] = w
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				if o.total > 0 && attempts.Add(1) > o.total {
					return
				}
				w.record(once(o, cfg))
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	rep := merge(workers)
	rep.Seconds = elapsed.Seconds()
	rep.Rate = float64(rep.OK) / rep.Seconds
	rep.ClientCPUSeconds = cpuSeconds() - cpu0
	rep.Connections = o.conns
	return rep
}

type result struct {
	elapsed time.Duration
	state   tls.ConnectionState
	err     error
}

func (w *worker) record(r result) {
	if r.err == nil {
		w.ok++
		w.latencies = append(w.latencies, r.elapsed)
		w.state = r.state
		return
	}
	kind := "other"
	var f *failure
	if errors.As(r.err, &f) {
		kind = f.kind
	}
	w.failures[kind]++
	if w.firstErr == "" {
		w.firstErr = r.err.Error()
	}
}

// once runs one connection: dial, handshake, request, response, close.
func once(o options, cfg *tls.Config) result {
	start := time.Now()
	raw, err := net.DialTimeout("tcp", o.addr, o.timeout)
	if err != nil {
		return result{err: fail("dial", err)}
	}
	defer raw.Close()
	if err := raw.SetDeadline(start.Add(o.timeout)); err != nil {
		return result{err: fail("dial", err)}
	}
	conn := tls.Client(raw, cfg)
	if err := conn.Handshake(); err != nil {
		return result{err: fail("handshake", err)}
	}
	state := conn.ConnectionState()
	if state.DidResume {
		return result{err: fail("resumed", errors.New("session was resumed"))}
	}
	if err := exchange(conn, o.body); err != nil {
		return result{err: err}
	}
	elapsed := time.Since(start)
	// Wait for the server to close (close_notify or FIN), then close.
	_, _ = io.Copy(io.Discard, conn)
	_ = conn.Close()
	return result{elapsed: elapsed, state: state}
}

func exchange(conn *tls.Conn, want string) error {
	req := "GET / HTTP/1.1\r\nHost: payment\r\nUser-Agent: tlsload\r\nConnection: close\r\n\r\n"
	if _, err := io.WriteString(conn, req); err != nil {
		return fail("write", err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return fail("response", err)
	}
	body, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		return fail("response", err)
	}
	if resp.StatusCode != http.StatusOK {
		return fail("status", fmt.Errorf("status %d", resp.StatusCode))
	}
	if string(body) != want {
		return fail("body", fmt.Errorf("body %q, want %q", body, want))
	}
	return nil
}

func merge(workers []*worker) report {
	rep := report{Failures: map[string]int64{}}
	var all []time.Duration
	for _, w := range workers {
		rep.OK += w.ok
		for kind, n := range w.failures {
			rep.Failures[kind] += n
			rep.Failed += n
		}
		if rep.FirstError == "" {
			rep.FirstError = w.firstErr
		}
		all = append(all, w.latencies...)
		if w.state.HandshakeComplete {
			describe(&rep, w.state)
		}
	}
	slices.Sort(all)
	rep.P50Micros = percentile(all, 0.50)
	rep.P99Micros = percentile(all, 0.99)
	return rep
}

func describe(rep *report, cs tls.ConnectionState) {
	rep.Version = tls.VersionName(cs.Version)
	rep.Group = cs.CurveID.String()
	rep.Cipher = tls.CipherSuiteName(cs.CipherSuite)
	rep.ALPN = cs.NegotiatedProtocol
	if len(cs.PeerCertificates) > 0 && len(cs.PeerCertificates[0].URIs) > 0 {
		rep.PeerID = cs.PeerCertificates[0].URIs[0].String()
	}
}

// percentile of sorted durations, in microseconds (nearest rank).
func percentile(sorted []time.Duration, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.5) - 1
	i = max(0, min(i, len(sorted)-1))
	return float64(sorted[i].Microseconds())
}

// cpuSeconds is the user+system CPU time of this process so far.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return tv(ru.Utime) + tv(ru.Stime)
}
