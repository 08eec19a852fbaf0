package upnp

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/huin/goupnp"
	"github.com/huin/goupnp/dcps/internetgateway2"
	"github.com/huin/goupnp/soap"
)

// The services that can forward ports, best first. internetgateway2's
// clients speak both IGD versions.
var serviceTypes = []string{
	internetgateway2.URN_WANIPConnection_2,
	internetgateway2.URN_WANIPConnection_1,
	internetgateway2.URN_WANPPPConnection_1,
}

func wantedService(t string) bool {
	for _, s := range serviceTypes {
		if t == s {
			return true
		}
	}
	return false
}

// igd is what the three generated service clients have in common.
type igd interface {
	AddPortMappingCtx(ctx context.Context, remoteHost string, extPort uint16, proto string, intPort uint16, intClient string, enabled bool, desc string, lease uint32) error
	DeletePortMappingCtx(ctx context.Context, remoteHost string, extPort uint16, proto string) error
	GetExternalIPAddressCtx(ctx context.Context) (string, error)
	GetSpecificPortMappingEntryCtx(ctx context.Context, remoteHost string, extPort uint16, proto string) (intPort uint16, intClient string, enabled bool, desc string, lease uint32, err error)
	GetGenericPortMappingEntryCtx(ctx context.Context, index uint16) (remoteHost string, extPort uint16, proto string, intPort uint16, intClient string, enabled bool, desc string, lease uint32, err error)
	GetStatusInfoCtx(ctx context.Context) (status, lastErr string, uptime uint32, err error)
}

// router is one discovered gateway and the service we use on it.
type router struct {
	addr     netip.Addr // the router's LAN address (where the answer came from)
	local    netip.Addr // our address facing it
	location *url.URL
	service  string // the service type in use
	name     string // friendly name, clipped: it is the router's text
	svc      igd
	guard    *guard
	timeout  time.Duration
}

// errGone marks a failure where the router did not answer at all: it is
// rebooting, moved to another port, or went away. The caller rediscovers.
var errGone = errors.New("router stopped answering")

// call runs f with the request timeout and tells a missing router from
// one that answered with an error.
func (r *router) call(ctx context.Context, f func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	before := r.guard.transportErrs.Load()
	err := f(ctx)
	if err != nil && r.guard.transportErrs.Load() != before && ctx.Err() == nil {
		return fmt.Errorf("%w: %v", errGone, err)
	}
	if err != nil && ctx.Err() == context.DeadlineExceeded {
		return fmt.Errorf("%w: no answer within %v", errGone, r.timeout)
	}
	return err
}

// openRouter fetches a's description and picks the best port-forwarding
// service in it.
func openRouter(ctx context.Context, a answer, timeout time.Duration) (*router, error) {
	hc, g := guardedClient(a.from, timeout)
	dctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	root, err := fetchDescription(dctx, hc, a.location, a.from)
	if err != nil {
		return nil, fmt.Errorf("router %s: %w", a.from, err)
	}
	r := &router{addr: a.from, local: a.local, location: a.location, guard: g, timeout: timeout,
		name: clip(strings.TrimSpace(root.Device.FriendlyName), 60)}
	setClient := func(sc *goupnp.ServiceClient) {
		sc.SOAPClient.HTTPClient = *hc
	}
	for _, st := range serviceTypes {
		switch st {
		case internetgateway2.URN_WANIPConnection_2:
			cs, _ := internetgateway2.NewWANIPConnection2ClientsFromRootDevice(root, a.location)
			if len(cs) > 0 {
				setClient(&cs[0].ServiceClient)
				r.svc, r.service = cs[0], st
			}
		case internetgateway2.URN_WANIPConnection_1:
			cs, _ := internetgateway2.NewWANIPConnection1ClientsFromRootDevice(root, a.location)
			if len(cs) > 0 {
				setClient(&cs[0].ServiceClient)
				r.svc, r.service = cs[0], st
			}
		case internetgateway2.URN_WANPPPConnection_1:
			cs, _ := internetgateway2.NewWANPPPConnection1ClientsFromRootDevice(root, a.location)
			if len(cs) > 0 {
				setClient(&cs[0].ServiceClient)
				r.svc, r.service = cs[0], st
			}
		}
		if r.svc != nil {
			return r, nil
		}
	}
	return nil, fmt.Errorf("router %s offers no port forwarding service", a.from)
}

// upnpCode is the UPnP error code in a SOAP fault, or 0.
func upnpCode(err error) int {
	var f *soap.SOAPFaultError
	if errors.As(err, &f) {
		return f.Detail.UPnPError.Errorcode
	}
	return 0
}

// httpStatusOnly reports whether err is goupnp's "got HTTP 501" without a
// SOAP body (some routers answer unimplemented actions that way).
func httpStatusOnly(err error, code int) bool {
	return err != nil && strings.Contains(err.Error(), fmt.Sprintf("SOAP request got HTTP %d", code))
}

// proto is the protocol as UPnP spells it.
func protoName(p string) string { return strings.ToUpper(p) }

var _ http.RoundTripper = (*guard)(nil)
