package registry

import "net/http"

// Transport is the client's transport stack (retries, stall detection,
// debug log, base), for tests that send requests through it directly.
func (c *Client) Transport() http.RoundTripper { return c.opts.Transport }
