// Package upnp asks the home router to forward the box's public ports to
// it (UPnP IGD: WANIPConnection 2 or 1, or WANPPPConnection 1, through
// github.com/huin/goupnp's service clients), keeps those forwardings alive,
// and finds out whether the router's internet address can be reached from
// outside at all (carrier-grade NAT, a second router in front).
//
// Run searches for the router with SSDP, maps exactly Options.Ports to the
// box's LAN address with a lease (default one hour; routers that only do
// permanent mappings, error 725, get permanent ones), renews at half the
// lease, searches again when the router stops answering (a reboot moves
// its port), and deletes the mappings when its context ends. DeleteAll
// removes them for a factory reset. With no router around Run keeps
// searching quietly with growing pauses, so a Pi is not woken needlessly.
//
// Anything on the LAN can answer a search, so the router's answers are
// treated as hostile: the description is fetched only from the address the
// answer came from, never through redirects or proxies, within timeouts,
// at most 64 KiB, and refused if it carries a DTD; the same limits hold
// for every SOAP answer (describe.go).
//
// Status checks (netconf/status), in plain words with an Action for each
// Warn and Error:
//
//   - "router": Pending while searching; OK when found (Detail "address",
//     "location", "service", "name", "lan_address"); Error when no router
//     offers UPnP or what answered cannot be used (Detail "error", "retry");
//     Off after Run ended or when turned off (Disabled).
//   - "mapping/<proto>/<port>" (e.g. "mapping/tcp/5222"): OK when the
//     router forwards the port to the box (Detail "lease" in seconds,
//     "0" meaning permanent; "internal"; "external" when known); Warn when
//     it forwards it but the internet address is not reachable from
//     outside; Error when the router refused (Detail "code", the UPnP error
//     code, and "error"); Pending while the router is being searched again.
//   - "external": OK with the router's public address (Detail "address",
//     "kind" = "public"); Error when the address is shared by the provider
//     (kind "cgnat", 100.64.0.0/10), private (kind "private": another
//     router in front), or missing (kind "none": an empty answer or an
//     error such as 501; the router may also not be online, Detail
//     "connection").
//
// OnExternal receives the home's usable public addresses whenever they
// change (empty when there is none), for dynamic DNS.
package upnp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/huin/goupnp/dcps/internetgateway2"

	"github.com/hearthchat/hearth/netconf/internal/wait"
	"github.com/hearthchat/hearth/netconf/status"
)

// Check IDs this package reports.
const (
	CheckRouter   = "router"
	CheckExternal = "external"
	// CheckMappingPrefix + "tcp/5222" is one mapping's check.
	CheckMappingPrefix = "mapping/"
)

// maxLease is the longest lease IGD 2 allows (one week).
const maxLease = 604800 * time.Second

// Port is one port to forward: the same port number outside and inside.
type Port struct {
	Proto       string // "tcp" or "udp"
	Port        int
	Description string // shown on the router's own pages
}

func (p Port) key() string { return strings.ToLower(p.Proto) + "/" + strconv.Itoa(p.Port) }

// CheckID is the status check of p's mapping.
func (p Port) CheckID() string { return CheckMappingPrefix + p.key() }

// Options configure a Client.
type Options struct {
	// Ports are exactly the ports to forward.
	Ports []Port
	// LANAddr is the box's address the router forwards to. Unset: the
	// address of the interface on which the router answered.
	LANAddr netip.Addr
	// Lease is how long each mapping lasts unless renewed; Run renews at
	// half of it. Default one hour.
	Lease time.Duration
	// Reporter receives the checks; nil discards them.
	Reporter status.Reporter
	// OnExternal is called (from Run's goroutine) with the home's usable
	// public addresses whenever they change; empty when there is none.
	OnExternal func([]netip.Addr)
	// Log receives technical lines; nil means slog.Default().
	Log *slog.Logger

	// SearchWait is how long one SSDP search listens for answers.
	// Default 3 seconds.
	SearchWait time.Duration
	// Timeout bounds each request to the router. Default 5 seconds.
	Timeout time.Duration
	// RetryMin and RetryMax bound the pause between searches while no
	// router is found. Defaults 30 seconds and 15 minutes.
	RetryMin, RetryMax time.Duration
	// Recheck is how often permanent mappings (lease 0) are confirmed, so
	// a router that forgot them gets them back. Default 20 minutes.
	Recheck time.Duration
}

// Client keeps the router's port mappings. Create it with New; run one Run
// at a time.
type Client struct {
	opts Options
	log  *slog.Logger
	rep  status.Reporter

	mu  sync.Mutex
	ext []netip.Addr
	cur *router // the router Run is using, for tests
}

// New fills in defaults; call Run.
func New(opts Options) *Client {
	if opts.Lease <= 0 {
		opts.Lease = time.Hour
	}
	if opts.Lease < time.Second {
		opts.Lease = time.Second
	}
	if opts.Lease > maxLease {
		opts.Lease = maxLease
	}
	if opts.SearchWait <= 0 {
		opts.SearchWait = 3 * time.Second
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 5 * time.Second
	}
	if opts.RetryMin <= 0 {
		opts.RetryMin = 30 * time.Second
	}
	if opts.RetryMax < opts.RetryMin {
		opts.RetryMax = max(15*time.Minute, opts.RetryMin)
	}
	if opts.Recheck <= 0 {
		opts.Recheck = 20 * time.Minute
	}
	c := &Client{opts: opts, log: opts.Log, rep: opts.Reporter}
	if c.log == nil {
		c.log = slog.Default()
	}
	if c.rep == nil {
		c.rep = discard{}
	}
	return c
}

// External returns the home's usable public addresses as last learned
// from the router; empty when there is none (or not known yet).
func (c *Client) External() []netip.Addr {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.ext)
}

func (c *Client) setExternal(addrs []netip.Addr) {
	c.mu.Lock()
	changed := !slices.Equal(c.ext, addrs)
	c.ext = addrs
	c.mu.Unlock()
	if changed && c.opts.OnExternal != nil {
		c.opts.OnExternal(slices.Clone(addrs))
	}
}

func (c *Client) validate() error {
	seen := map[string]bool{}
	for _, p := range c.opts.Ports {
		pr := strings.ToLower(p.Proto)
		if pr != "tcp" && pr != "udp" {
			return fmt.Errorf("upnp: port %d: protocol %q is not tcp or udp", p.Port, p.Proto)
		}
		if p.Port < 1 || p.Port > 65535 {
			return fmt.Errorf("upnp: port %d out of range", p.Port)
		}
		if seen[p.key()] {
			return fmt.Errorf("upnp: port %s listed twice", p.key())
		}
		seen[p.key()] = true
	}
	if c.opts.LANAddr.IsValid() && !c.opts.LANAddr.Unmap().Is4() {
		return fmt.Errorf("upnp: LAN address %s is not IPv4", c.opts.LANAddr)
	}
	return nil
}

// Run keeps the mappings until ctx ends, then deletes them. It returns nil
// after ctx ends, or an error at once when the options are unusable.
func (c *Client) Run(ctx context.Context) error {
	if err := c.validate(); err != nil {
		c.rep.Set(status.Check{ID: CheckRouter, Title: titleRouter, Level: status.Error,
			Message: "The list of ports to open on the router is not valid.",
			Action:  "Restart the box; if this stays, report it to whoever looks after the box.",
			Detail:  map[string]string{"error": err.Error()}})
		return err
	}
	c.rep.Set(status.Check{ID: CheckRouter, Title: titleRouter, Level: status.Pending,
		Message: "Looking for your router…"})
	retryIn := c.opts.RetryMin
	lost := false
	for {
		r, err := c.discover(ctx)
		if ctx.Err() != nil {
			c.stopped()
			return nil
		}
		if err != nil {
			c.log.Info("upnp: no usable router", "err", err, "retry", retryIn)
			c.reportNoRouter(err, retryIn, lost)
			if !wait.Sleep(ctx, retryIn) {
				c.stopped()
				return nil
			}
			retryIn = min(2*retryIn, c.opts.RetryMax)
			continue
		}
		retryIn = c.opts.RetryMin
		c.mu.Lock()
		c.cur = r
		c.mu.Unlock()
		c.reportRouter(r)
		mapped := map[string]Port{}
		err = c.serve(ctx, r, mapped)
		if ctx.Err() != nil {
			c.unmap(r, mapped)
			c.stopped()
			return nil
		}
		c.log.Info("upnp: lost the router; searching again", "router", r.addr, "err", err)
		lost = true
		c.reportLost(err)
		// A rebooting router needs a moment before it answers again.
		if !wait.Sleep(ctx, min(c.opts.RetryMin, 5*time.Second)) {
			c.stopped()
			return nil
		}
	}
}

// discover finds the router: an SSDP search, then the first answer whose
// description holds a usable service.
func (c *Client) discover(ctx context.Context) (*router, error) {
	var locals []netip.Addr
	if c.opts.LANAddr.IsValid() {
		locals = []netip.Addr{c.opts.LANAddr.Unmap()}
	} else {
		var err error
		if locals, err = localIPv4(); err != nil {
			return nil, &noRouterError{msg: "cannot list network interfaces", err: err}
		}
	}
	targets := append(slices.Clone(serviceTypes),
		"urn:schemas-upnp-org:device:InternetGatewayDevice:2",
		"urn:schemas-upnp-org:device:InternetGatewayDevice:1")
	answers, dropped, err := search(ctx, locals, targets, c.opts.SearchWait)
	if err != nil {
		return nil, &noRouterError{msg: "cannot search the network", err: err, dropped: dropped}
	}
	if len(answers) == 0 {
		return nil, &noRouterError{msg: "no router answered", dropped: dropped}
	}
	var errs []error
	for _, a := range answers {
		r, err := openRouter(ctx, a, c.opts.Timeout)
		if err == nil {
			return r, nil
		}
		c.log.Warn("upnp: router answer unusable", "from", a.from, "err", err)
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return nil, &badRouterError{err: errors.Join(errs...)}
}

// serve maps the ports on r and renews them until ctx ends (returns
// ctx.Err()) or r stops answering (returns an errGone error). mapped
// collects what is on the router, for unmap.
func (c *Client) serve(ctx context.Context, r *router, mapped map[string]Port) error {
	lan := c.opts.LANAddr.Unmap()
	if !lan.IsValid() {
		lan = r.local
	}
	lease := uint32(c.opts.Lease / time.Second)
	for {
		ext, err := c.checkExternal(ctx, r)
		if errors.Is(err, errGone) {
			return err
		}
		for _, p := range c.opts.Ports {
			if err := c.mapOne(ctx, r, lan, p, &lease, ext, mapped); errors.Is(err, errGone) {
				return err
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
		}
		next := c.opts.Recheck
		if lease > 0 {
			next = max(time.Duration(lease)*time.Second/2, time.Second)
		}
		if !wait.Sleep(ctx, next) {
			return ctx.Err()
		}
	}
}

// extState is what checkExternal found, for the wording of the mappings.
type extState struct {
	addr netip.Addr
	kind addrKind
}

func (c *Client) checkExternal(ctx context.Context, r *router) (extState, error) {
	var raw string
	err := r.call(ctx, func(ctx context.Context) error {
		var err error
		raw, err = r.svc.GetExternalIPAddressCtx(ctx)
		return err
	})
	if errors.Is(err, errGone) {
		return extState{}, err
	}
	addr, kind := classify(strings.TrimSpace(raw))
	if err != nil {
		kind = kindNone
	}
	st := extState{addr, kind}
	connection := ""
	if kind == kindNone {
		// Is the router online at all? Only asked when needed: one
		// request less on every renewal of a healthy router.
		cerr := r.call(ctx, func(ctx context.Context) error {
			var err error
			connection, _, _, err = r.svc.GetStatusInfoCtx(ctx)
			return err
		})
		if errors.Is(cerr, errGone) {
			return extState{}, cerr
		}
		connection = clip(strings.TrimSpace(connection), 40)
	}
	c.rep.Set(externalCheck(st, raw, err, connection))
	if kind == kindPublic {
		c.setExternal([]netip.Addr{addr})
	} else {
		c.setExternal(nil)
	}
	return st, nil
}

// mapOne adds (or renews) one mapping and reports it.
func (c *Client) mapOne(ctx context.Context, r *router, lan netip.Addr, p Port, lease *uint32, ext extState, mapped map[string]Port) error {
	add := func() error {
		return r.call(ctx, func(ctx context.Context) error {
			return r.svc.AddPortMappingCtx(ctx, "", uint16(p.Port), protoName(p.Proto), uint16(p.Port), lan.String(), true, p.Description, *lease)
		})
	}
	err := add()
	if upnpCode(err) == 725 && *lease != 0 {
		// OnlyPermanentLeasesSupported: from now on, permanent mappings,
		// confirmed every Recheck.
		c.log.Info("upnp: router supports only permanent mappings")
		*lease = 0
		err = add()
	}
	other := ""
	if upnpCode(err) == 718 {
		// Some IGDv1 routers refuse to update a mapping that is already
		// ours; renew it by deleting and adding. One that points elsewhere
		// is another device's, and stays.
		var client string
		gerr := r.call(ctx, func(ctx context.Context) error {
			var err error
			_, client, _, _, _, err = r.svc.GetSpecificPortMappingEntryCtx(ctx, "", uint16(p.Port), protoName(p.Proto))
			return err
		})
		if errors.Is(gerr, errGone) {
			return gerr
		}
		if gerr == nil && strings.TrimSpace(client) == lan.String() {
			derr := r.call(ctx, func(ctx context.Context) error {
				return r.svc.DeletePortMappingCtx(ctx, "", uint16(p.Port), protoName(p.Proto))
			})
			if errors.Is(derr, errGone) {
				return derr
			}
			err = add()
		} else if gerr == nil {
			other = clip(strings.TrimSpace(client), 40)
		}
	}
	if errors.Is(err, errGone) {
		return err
	}
	if err != nil {
		c.log.Warn("upnp: mapping refused", "port", p.key(), "err", err)
		delete(mapped, p.key())
		c.rep.Set(mappingRefused(p, lan, ext, err, other))
		return err
	}
	mapped[p.key()] = p
	c.rep.Set(mappingOK(p, lan, ext, *lease))
	return nil
}

// unmap deletes what Run put on r, with its own short deadline: ctx has
// already ended.
func (c *Client) unmap(r *router, mapped map[string]Port) {
	if len(mapped) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), r.timeout+time.Duration(len(mapped))*time.Second)
	defer cancel()
	for _, p := range mapped {
		err := r.call(ctx, func(ctx context.Context) error {
			return r.svc.DeletePortMappingCtx(ctx, "", uint16(p.Port), protoName(p.Proto))
		})
		if err != nil && upnpCode(err) != 714 { // 714: already gone
			c.log.Warn("upnp: delete mapping", "port", p.key(), "err", err)
		}
		if errors.Is(err, errGone) || ctx.Err() != nil {
			return
		}
	}
}

// DeleteAll removes every mapping this box has on the router, for a
// factory reset: the ports in Options, and any other mapping to the box's
// address whose description is one of ours or starts with "Hearth". Stop
// Run first, or it puts its mappings back.
func (c *Client) DeleteAll(ctx context.Context) error {
	if err := c.validate(); err != nil {
		return err
	}
	r, err := c.discover(ctx)
	if err != nil {
		return fmt.Errorf("upnp: delete all: %w", err)
	}
	lan := c.opts.LANAddr.Unmap()
	if !lan.IsValid() {
		lan = r.local
	}
	ours := map[string]bool{}
	for _, p := range c.opts.Ports {
		ours[p.Description] = true
	}
	type entry struct {
		port  uint16
		proto string
	}
	var todo []entry
	seen := map[entry]bool{}
	addTodo := func(e entry) {
		if !seen[e] {
			seen[e] = true
			todo = append(todo, e)
		}
	}
	for _, p := range c.opts.Ports {
		var client string
		err := r.call(ctx, func(ctx context.Context) error {
			var err error
			_, client, _, _, _, err = r.svc.GetSpecificPortMappingEntryCtx(ctx, "", uint16(p.Port), protoName(p.Proto))
			return err
		})
		if errors.Is(err, errGone) {
			return fmt.Errorf("upnp: delete all: %w", err)
		}
		if err == nil && strings.TrimSpace(client) == lan.String() {
			addTodo(entry{uint16(p.Port), protoName(p.Proto)})
		}
	}
	// The router's whole table, bounded: mappings from an older port list.
	for i := 0; i < 256; i++ {
		var e entry
		var client, desc string
		err := r.call(ctx, func(ctx context.Context) error {
			var err error
			_, e.port, e.proto, _, client, _, desc, _, err = r.svc.GetGenericPortMappingEntryCtx(ctx, uint16(i))
			return err
		})
		if errors.Is(err, errGone) {
			return fmt.Errorf("upnp: delete all: %w", err)
		}
		if err != nil {
			break // 713 SpecifiedArrayIndexInvalid: end of the table
		}
		e.proto = protoName(e.proto)
		if strings.TrimSpace(client) == lan.String() && (ours[desc] || strings.HasPrefix(desc, "Hearth")) {
			addTodo(e)
		}
	}
	var errs []error
	for _, e := range todo {
		err := r.call(ctx, func(ctx context.Context) error {
			return r.svc.DeletePortMappingCtx(ctx, "", e.port, e.proto)
		})
		if err != nil && upnpCode(err) != 714 {
			errs = append(errs, fmt.Errorf("upnp: delete mapping %s/%d: %w", e.proto, e.port, err))
		}
	}
	c.rep.RemovePrefix(CheckMappingPrefix)
	return errors.Join(errs...)
}

// stopped reports that Run ended: the mappings are deleted.
func (c *Client) stopped() {
	c.rep.RemovePrefix(CheckMappingPrefix)
	c.rep.Remove(CheckExternal)
	c.rep.Set(status.Check{ID: CheckRouter, Title: titleRouter, Level: status.Off,
		Message: "The box is not asking the router to open ports right now."})
}

// Disabled reports that opening ports on the router is turned off.
func Disabled(rep status.Reporter) {
	rep.RemovePrefix(CheckMappingPrefix)
	rep.Remove(CheckExternal)
	rep.Set(status.Check{ID: CheckRouter, Title: titleRouter, Level: status.Off,
		Message: "Opening ports on the router is turned off."})
}

type discard struct{}

func (discard) Set(status.Check)    {}
func (discard) Remove(string)       {}
func (discard) RemovePrefix(string) {}

// serviceName says which service is in use, for Detail.
func serviceName(st string) string {
	switch st {
	case internetgateway2.URN_WANIPConnection_2:
		return "WANIPConnection:2"
	case internetgateway2.URN_WANIPConnection_1:
		return "WANIPConnection:1"
	case internetgateway2.URN_WANPPPConnection_1:
		return "WANPPPConnection:1"
	}
	return st
}
