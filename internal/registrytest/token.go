package registrytest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/registry/auth/token"
	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// TokenAuth configures token authentication, the protocol of Docker Hub,
// ACR, ECR and Harbor: the registry answers 401 with a Bearer challenge,
// and the client trades its credentials for a short-lived JWT at the token
// endpoint the challenge names.
//
// The registry checks tokens with distribution's own token access
// controller. The token endpoint is served at TokenPath on the registry's
// own address: go-containerregistry refuses a token realm on another
// loopback or private address than the registry's. It checks Options'
// Username and Password with basic authentication (any client gets a token
// when Username is empty) and grants every scope asked for.
type TokenAuth struct {
	// TTL is how long an issued token is accepted (default 5 minutes),
	// rounded up to the second.
	TTL time.Duration
	// RefreshToken, when set, is an OAuth2 refresh token the endpoint
	// accepts, as Azure Container Registry does: a POST with
	// grant_type=refresh_token and this refresh_token gets an access token
	// (az acr login stores the refresh token as identitytoken in
	// config.json). A GET with valid credentials and offline_token=true,
	// as docker login sends, gets it back as refresh_token.
	RefreshToken string
	// Realm, when set, is the token service the registry's challenge names
	// instead of TokenPath on its own address, as Docker Hub names
	// auth.docker.io: serve TokenHandler there. go-containerregistry accepts
	// a realm on another host only when it is a name (such as localhost),
	// not a loopback or private IP address.
	Realm string
}

// TokenPath is the path of the token endpoint of a registry with TokenAuth.
const TokenPath = "/auth/token"

const tokenService, tokenIssuer = "registrytest", "registrytest-token-server"

// tokenServer issues tokens for one registry.
type tokenServer struct {
	key        *ecdsa.PrivateKey
	kid        string
	ttl        time.Duration
	refresh    string
	mu         sync.Mutex
	user, pass string
	issued     atomic.Int64
	refused    atomic.Int64
	grants     atomic.Int64 // access tokens issued for a refresh token
}

// newTokenServer makes a signing key and writes its self-signed certificate
// to dir, for the access controller to trust.
func newTokenServer(opts Options, dir string) (*tokenServer, string, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, "", err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: tokenIssuer},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, "", err
	}
	bundle := filepath.Join(dir, "token-signer.pem")
	if err := os.WriteFile(bundle, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		return nil, "", err
	}
	ttl := opts.Token.TTL
	if ttl <= 0 {
		ttl = 5 * time.Minute
	}
	ts := &tokenServer{key: key, kid: token.GetJWKThumbprint(&key.PublicKey), ttl: ttl, refresh: opts.Token.RefreshToken, user: opts.Username, pass: opts.Password}
	return ts, bundle, nil
}

// TokenHandler serves the token endpoint of a registry with TokenAuth, for
// a server at TokenAuth.Realm.
func (r *Registry) TokenHandler() http.Handler {
	if r.tokens == nil {
		panic("registrytest: TokenHandler needs TokenAuth")
	}
	return r.tokens
}

// authConfig is the registry's auth section for the token access controller.
func (ts *tokenServer) authConfig(realm, bundle string) configuration.Auth {
	return configuration.Auth{"token": configuration.Parameters{
		"realm":          realm,
		"service":        tokenService,
		"issuer":         tokenIssuer,
		"rootcertbundle": bundle,
	}}
}

// ServeHTTP issues a token for the scopes asked for, as
// https://distribution.github.io/distribution/spec/auth/token/ describes.
//
// A POST is the OAuth2 form
// (https://distribution.github.io/distribution/spec/auth/oauth/): only
// grant_type=refresh_token with TokenAuth.RefreshToken is accepted.
func (ts *tokenServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ts.mu.Lock()
	user, pass := ts.user, ts.pass
	ts.mu.Unlock()
	params := r.URL.Query()
	switch r.Method {
	case http.MethodPost:
		if err := r.ParseForm(); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		params = r.PostForm
		if params.Get("grant_type") != "refresh_token" || ts.refresh == "" || params.Get("refresh_token") != ts.refresh {
			ts.refused.Add(1)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = io.WriteString(w, `{"errors":[{"code":"UNAUTHORIZED","message":"invalid refresh token"}]}`)
			return
		}
		ts.grants.Add(1)
	case http.MethodGet:
		if user != "" {
			u, p, ok := r.BasicAuth()
			if !ok || u != user || p != pass {
				ts.refused.Add(1)
				w.Header().Set("WWW-Authenticate", `Basic realm="registrytest token"`)
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusUnauthorized)
				_, _ = io.WriteString(w, `{"errors":[{"code":"UNAUTHORIZED","message":"wrong username or password"}]}`)
				return
			}
		}
	default:
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if s := params.Get("service"); s != tokenService {
		http.Error(w, fmt.Sprintf("unknown service %q", s), http.StatusBadRequest)
		return
	}
	var access []*token.ResourceActions
	for _, param := range params["scope"] {
		for _, scope := range strings.Fields(param) {
			// type:name:actions; a name may hold ':' (a port in a name is
			// not allowed, but be lenient).
			typ, rest, ok1 := strings.Cut(scope, ":")
			i := strings.LastIndexByte(rest, ':')
			if !ok1 || i < 0 {
				http.Error(w, fmt.Sprintf("malformed scope %q", scope), http.StatusBadRequest)
				return
			}
			access = append(access, &token.ResourceActions{Type: typ, Name: rest[:i], Actions: strings.Split(rest[i+1:], ",")})
		}
	}
	now := time.Now()
	claims := token.ClaimSet{
		Issuer:   tokenIssuer,
		Subject:  user,
		Audience: token.AudienceList{tokenService},
		// The access controller accepts a token until token.Leeway after
		// its expiry (for clock skew); write the expiry that much earlier
		// so that the token is refused TTL after it was issued (rounded up
		// to the second: the claim is in whole seconds).
		Expiration: now.Add(ts.ttl - token.Leeway + time.Second - 1).Unix(),
		NotBefore:  now.Unix(),
		IssuedAt:   now.Unix(),
		JWTID:      fmt.Sprintf("registrytest-%d", ts.issued.Load()+1),
		Access:     access,
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: ts.key},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", ts.kid))
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	raw, err := jwt.Signed(signer).Claims(claims).Serialize()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	ts.issued.Add(1)
	answer := map[string]any{
		"token":        raw,
		"access_token": raw,
		"expires_in":   max(int(ts.ttl.Round(time.Second)/time.Second), 1),
		"issued_at":    now.UTC().Format(time.RFC3339),
	}
	if r.Method == http.MethodGet && params.Get("offline_token") == "true" && ts.refresh != "" {
		answer["refresh_token"] = ts.refresh
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(answer)
}
