package upnp

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/huin/goupnp"
)

// The router's description document and its SOAP answers are hostile
// input: anything on the LAN can answer a search. Everything fetched goes
// through guardedClient, which talks only to the address that answered,
// never follows redirects or proxies, bounds time and size, and refuses
// DTDs.

// MaxDocument caps the description document and every SOAP answer.
const MaxDocument = 64 << 10

var errTooLarge = fmt.Errorf("answer larger than %d KiB", MaxDocument>>10)

// guard is an http.RoundTripper that sends requests only to host, and caps
// the bodies of the answers.
type guard struct {
	host netip.Addr
	base http.RoundTripper
	// transportErrs counts requests that got no HTTP answer at all (refused,
	// timed out, reset): how a rebooted router looks. goupnp's SOAP client
	// flattens errors to text, so this is how we tell "router gone" from
	// "router said no".
	transportErrs atomic.Int64
}

func (g *guard) RoundTrip(req *http.Request) (*http.Response, error) {
	h, err := netip.ParseAddr(req.URL.Hostname())
	if req.URL.Scheme != "http" || err != nil || h.Unmap() != g.host {
		return nil, fmt.Errorf("refusing to fetch %q: not on the router %s", clip(req.URL.String(), 120), g.host)
	}
	resp, err := g.base.RoundTrip(req)
	if err != nil {
		g.transportErrs.Add(1)
		return nil, err
	}
	if resp.ContentLength > MaxDocument {
		resp.Body.Close()
		return nil, errTooLarge
	}
	resp.Body = &capped{r: resp.Body, left: MaxDocument}
	return resp, nil
}

// capped fails a read that goes past its limit, so a decoder sees an error
// rather than a silently truncated document.
type capped struct {
	r    io.ReadCloser
	left int64
}

func (c *capped) Read(p []byte) (int, error) {
	if c.left <= 0 {
		// One more byte tells "exactly at the limit" from "over it".
		var one [1]byte
		n, err := c.r.Read(one[:])
		if n > 0 {
			return 0, errTooLarge
		}
		return 0, err
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	return n, err
}

func (c *capped) Close() error { return c.r.Close() }

// guardedClient is the only HTTP client this package uses.
func guardedClient(host netip.Addr, timeout time.Duration) (*http.Client, *guard) {
	d := &net.Dialer{Timeout: timeout}
	g := &guard{host: host, base: &http.Transport{
		Proxy:                  nil, // never an environment proxy: the router is on the LAN
		DialContext:            d.DialContext,
		ResponseHeaderTimeout:  timeout,
		MaxResponseHeaderBytes: 16 << 10,
		DisableCompression:     true,
		MaxIdleConns:           2,
		IdleConnTimeout:        30 * time.Second,
	}}
	return &http.Client{
		Transport: g,
		Timeout:   timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return errors.New("router redirected; not following")
		},
	}, g
}

// fetchDescription gets and parses the root device description at loc,
// which must be on host. Every service's control URL is checked to be on
// host too.
func fetchDescription(ctx context.Context, hc *http.Client, loc *url.URL, host netip.Addr) (*goupnp.RootDevice, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, loc.String(), nil)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("description: HTTP %d", resp.StatusCode)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("description: %w", err)
	}
	return parseDescription(body, loc, host)
}

// parseDescription decodes a description document after checking that it
// holds no DTD or other directive. (encoding/xml never expands external
// entities, but a document that carries a DTD is not from an honest
// router, and refusing it keeps us out of that business entirely.)
func parseDescription(body []byte, loc *url.URL, host netip.Addr) (*goupnp.RootDevice, error) {
	if len(body) > MaxDocument {
		return nil, errTooLarge
	}
	if err := plainXML(body); err != nil {
		return nil, fmt.Errorf("description: %w", err)
	}
	root := new(goupnp.RootDevice)
	dec := xml.NewDecoder(bytes.NewReader(body))
	dec.DefaultSpace = goupnp.DeviceXMLNamespace
	if err := dec.Decode(root); err != nil {
		return nil, fmt.Errorf("description: %w", err)
	}
	base := loc
	if root.URLBaseStr != "" {
		b, err := checkLocation(strings.TrimSpace(root.URLBaseStr), host)
		if err != nil {
			return nil, fmt.Errorf("description URLBase: %w", err)
		}
		base = b
	}
	root.SetURLBase(base)
	var bad error
	root.Device.VisitServices(func(s *goupnp.Service) {
		if bad != nil || !wantedService(s.ServiceType) {
			return
		}
		if _, err := checkLocation(s.ControlURL.URL.String(), host); err != nil {
			bad = fmt.Errorf("description: control URL of %s: %w", s.ServiceType, err)
		}
	})
	if bad != nil {
		return nil, bad
	}
	return root, nil
}

// plainXML rejects directives (<!DOCTYPE…>, <!ENTITY…>) and processing
// instructions other than the XML declaration.
func plainXML(body []byte) error {
	dec := xml.NewDecoder(bytes.NewReader(body))
	dec.Strict = true
	for depth := 0; ; {
		tok, err := dec.RawToken()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		switch t := tok.(type) {
		case xml.Directive:
			return errors.New("document carries a DTD or directive; refused")
		case xml.ProcInst:
			if t.Target != "xml" {
				return fmt.Errorf("processing instruction %q refused", clip(t.Target, 40))
			}
		case xml.StartElement:
			if depth++; depth > 32 {
				return errors.New("document nested too deeply")
			}
		case xml.EndElement:
			depth--
		}
	}
}
