package registrytest

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"sync"
	"time"
)

// selfSigned makes a certificate for 127.0.0.1 that no client trusts
// unless told to, and its PEM.
func selfSigned() (tls.Certificate, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(2),
		Subject:               pkix.Name{CommonName: "registrytest mixed TLS"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}

// mixedListener hands the server TLS connections for clients that start
// with a TLS handshake record, and plain ones for the others. Each
// connection is sniffed on its own goroutine, so a client that connects and
// sends nothing holds up no other.
type mixedListener struct {
	net.Listener
	config *tls.Config
	conns  chan net.Conn
	done   chan struct{}
	once   sync.Once
	mu     sync.Mutex
	err    error
}

func newMixedListener(l net.Listener, config *tls.Config) *mixedListener {
	m := &mixedListener{Listener: l, config: config, conns: make(chan net.Conn), done: make(chan struct{})}
	go m.acceptLoop()
	return m
}

func (m *mixedListener) acceptLoop() {
	for {
		c, err := m.Listener.Accept()
		if err != nil {
			m.mu.Lock()
			m.err = err
			m.mu.Unlock()
			m.once.Do(func() { close(m.done) })
			return
		}
		go m.sniff(c)
	}
}

// tlsHandshakeRecord is the first byte of a TLS record that carries a
// handshake message (a ClientHello, from a client).
const tlsHandshakeRecord = 0x16

func (m *mixedListener) sniff(c net.Conn) {
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	first, err := br.Peek(1)
	_ = c.SetReadDeadline(time.Time{})
	if err != nil {
		c.Close()
		return
	}
	var out net.Conn = &peekedConn{Conn: c, r: br}
	if first[0] == tlsHandshakeRecord {
		out = tls.Server(out, m.config)
	}
	select {
	case m.conns <- out:
	case <-m.done:
		c.Close()
	}
}

func (m *mixedListener) Accept() (net.Conn, error) {
	select {
	case c := <-m.conns:
		return c, nil
	case <-m.done:
		m.mu.Lock()
		defer m.mu.Unlock()
		return nil, m.err
	}
}

func (m *mixedListener) Close() error {
	err := m.Listener.Close()
	m.once.Do(func() { close(m.done) })
	return err
}

// peekedConn reads through the buffer that holds the sniffed byte.
type peekedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *peekedConn) Read(p []byte) (int, error) { return c.r.Read(p) }
