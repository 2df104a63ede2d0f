package bundle

import (
	"crypto/tls"
	"io"
	"net/http"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/ferryproject/ferry/internal/registry"
)

// RegistryOptions say how to reach registries. The zero value uses the
// default keychain (docker and podman credential files and helpers).
type RegistryOptions struct {
	Keychain authn.Keychain
	// Transport is the base HTTP transport (TLS, proxies). Nil means a
	// clone of http.DefaultTransport with retries.
	Transport http.RoundTripper
	// Insecure lists hosts reached over plain HTTP, credentials included,
	// or unverified TLS. Other loopback, *.localhost and RFC 1918 hosts are
	// reached over plain HTTP only when they do not speak TLS (never after a
	// TLS handshake or certificate error), and get credentials in clear
	// only on loopback.
	Insecure []string
	// UserAgent sent to registries.
	UserAgent string
	// TLS configures verified TLS connections: RootCAs for a private CA,
	// Certificates for client certificates. Nil means the system roots.
	TLS *tls.Config
	// Retries is how many times a failed request or blob transfer is tried
	// again (connection resets, timeouts, 408, 429 with Retry-After, 5xx).
	// Zero means 5; negative means none.
	Retries int
	// RetryBase is the first backoff, doubled each try with jitter
	// (default 500ms).
	RetryBase time.Duration
	// Debug, when set, receives a log of every HTTP request and response:
	// headers only, with Authorization and cookies redacted.
	Debug io.Writer
	// StallTimeout abandons, and tries again, a request that makes no
	// progress for that long: no response to a request without a body, an
	// upload the connection takes no more of, or a response body that
	// delivers nothing. A slow but steady transfer is never cut, and the
	// wait for the registry to store a fully sent blob is not limited.
	// Zero means DefaultStallTimeout; negative means no limit.
	StallTimeout time.Duration
	// Egress, when set, records every host contacted (registries, their
	// token services, the storage blob downloads are redirected to), with
	// request and body byte counts per host: what a firewall must allow.
	// It records host names, schemes and ports only, never paths, queries
	// or credentials.
	Egress *EgressLog
}

// EgressLog records the hosts a registry client contacts; see
// RegistryOptions.Egress. The zero value is ready to use.
type EgressLog = registry.EgressLog

// HostTraffic is what an EgressLog recorded for one host.
type HostTraffic = registry.HostTraffic

// Endpoint is a scheme and port an EgressLog saw a host on.
type Endpoint = registry.Endpoint

// Roles of a host in HostTraffic.Roles.
const (
	RoleRegistry = registry.RoleRegistry
	RoleToken    = registry.RoleToken
	RoleRedirect = registry.RoleRedirect
)

// DefaultStallTimeout, one minute, is the stall timeout when
// RegistryOptions.StallTimeout is zero.
const DefaultStallTimeout = registry.DefaultStallTimeout

// client converts the options to the client's, field for field: the two
// structs have the same fields in the same order, or this does not compile.
func (o RegistryOptions) client() *registry.Client {
	return registry.New(registry.Options(o))
}

// EventKind says what a progress Event reports.
type EventKind int

// Event kinds.
const (
	// EventResolved: a reference was resolved (Ref, Digest).
	EventResolved EventKind = iota
	// EventBlobStart: a blob transfer started (Digest, Size).
	EventBlobStart
	// EventBlobBytes: Bytes more bytes of a blob were transferred.
	EventBlobBytes
	// EventBlobDone: a blob was transferred.
	EventBlobDone
	// EventBlobSkipped: the destination already had the blob (or it was
	// mounted). Import reports a blob that several repositories need once
	// for each: EventBlobDone or EventBlobSkipped for the first, then
	// EventBlobSkipped for each other one.
	EventBlobSkipped
	// EventManifest: export read a manifest, or import pushed one or set a
	// tag (Ref, Digest): one event each.
	EventManifest
	// EventResolving: export started resolving a reference (Ref), before
	// any of its manifests is read.
	EventResolving
	// EventPlanned: the blobs to transfer are known, before the first
	// starts: Blobs of them, Total bytes. Export knows them once every
	// manifest is read, import from the bundle's index.json (also on
	// standard input). Sent once per copy.
	EventPlanned
)

// Event is a progress report. The library only reports; drawing is the
// caller's business. Callbacks may come from several goroutines at once.
type Event struct {
	Kind EventKind
	// Ref names the reference; for EventBlobStart, the first image that
	// uses the blob (with " +N" when N more use it).
	Ref    string
	Digest string
	Size   int64
	Bytes  int64
	// Total is the number of bytes the whole operation will transfer, when known.
	Total int64
	// Blobs is, for EventPlanned, the number of blobs to transfer.
	Blobs int
}

func (f ProgressFunc) emit(e Event) {
	if f != nil {
		f(e)
	}
}

// ProgressFunc receives progress events.
type ProgressFunc func(Event)

// metaJobs is how many small requests (manifests, configs, mounts, tags,
// checks) run at once beside Jobs blob transfers: their time is the round
// trip to the registry, not bandwidth, so a link with latency wants more of
// them in flight. Jobs 1 keeps everything to one request at a time, for the
// most fragile links.
func metaJobs(jobs int) int {
	if jobs == 1 {
		return 1
	}
	return 4 * jobs
}

func defaultJobs(n int) int {
	if n <= 0 {
		return 8
	}
	return n
}
