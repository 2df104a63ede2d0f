// Package delayproxy is an HTTP reverse proxy on loopback that waits a
// fixed time before forwarding each request, so that a benchmark can put a
// registry "far away" without leaving the machine. ferry-bench puts it in
// front of the source registry for exports and in front of the destination
// registry for imports (see docs/performance.md, "Latency").
//
// It models the round trip of a distant link as a wait per HTTP request:
// a tool that sends its requests one after the other pays the delay once
// per request, one that overlaps them pays it once per wave. Bodies stream
// through in both directions (nothing is buffered whole) and connections
// are kept alive on both sides, so a tool that reuses its connections pays
// no connection set-up. TCP handshakes, slow start and bandwidth are not
// modelled: the proxy gives a lower bound of what a real link costs.
//
// The proxy only listens on 127.0.0.1 and only connects to a target on
// 127.0.0.1.
package delayproxy
