package upnp

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/hearthchat/hearth/netconf/status"
)

// Everything a person reads comes from this file, so the wording stays
// consistent. Technical facts go in Detail.

const (
	titleRouter   = "Router"
	titleExternal = "Internet address"

	actionTor = "Turn on the onion address (Tor) in Settings → Network so members can still connect, or ask your internet provider for a public IPv4 address."
)

// noRouterError: nothing usable answered the search.
type noRouterError struct {
	msg     string
	err     error
	dropped []string // answers we refused, for Detail
}

func (e *noRouterError) Error() string {
	s := e.msg
	if e.err != nil {
		s += ": " + e.err.Error()
	}
	if len(e.dropped) > 0 {
		s += " (ignored: " + strings.Join(e.dropped, "; ") + ")"
	}
	return s
}

func (e *noRouterError) Unwrap() error { return e.err }

// badRouterError: something answered, but its description was unusable
// (too large, a DTD, a foreign address, no port forwarding service, …).
type badRouterError struct{ err error }

func (e *badRouterError) Error() string { return "router answer unusable: " + e.err.Error() }
func (e *badRouterError) Unwrap() error { return e.err }

func (c *Client) reportNoRouter(err error, retry time.Duration, lost bool) {
	d := map[string]string{"error": err.Error(), "retry": retry.String()}
	var bad *badRouterError
	if errors.As(err, &bad) {
		c.rep.Set(status.Check{ID: CheckRouter, Title: titleRouter, Level: status.Error,
			Message: "A device on your home network answered as the router, but what it sent could not be used, so no ports are open.",
			Action:  "Restart your router. If this stays, open its settings page and forward the ports by hand, or turn on the onion address (Tor) in Settings → Network.",
			Detail:  d})
	} else {
		msg := "No router on your home network offers to open ports automatically (UPnP), so people outside cannot reach the box through it."
		if lost {
			msg = "Your router stopped answering and has not come back, so the box cannot keep its ports open."
		}
		c.rep.Set(status.Check{ID: CheckRouter, Title: titleRouter, Level: status.Error,
			Message: msg,
			Action:  "Open your router's settings page and turn on UPnP (often under “Network” or “Sharing”). If you would rather not, turn off “Open ports on the router” in Settings → Network. The box keeps looking meanwhile.",
			Detail:  d})
	}
	for _, p := range c.opts.Ports {
		c.rep.Set(status.Check{ID: p.CheckID(), Title: mappingTitle(p), Level: status.Pending,
			Message: "Waiting for the router.", Detail: map[string]string{"protocol": strings.ToLower(p.Proto), "port": strconv.Itoa(p.Port)}})
	}
}

func (c *Client) reportRouter(r *router) {
	name := r.name
	if name == "" {
		name = r.addr.String()
	}
	c.rep.Set(status.Check{ID: CheckRouter, Title: titleRouter, Level: status.OK,
		Message: fmt.Sprintf("Found your router (“%s”); it can open ports for the box.", name),
		Detail: map[string]string{"address": r.addr.String(), "location": r.location.String(),
			"service": serviceName(r.service), "name": r.name, "lan_address": r.local.String()}})
}

func (c *Client) reportLost(err error) {
	c.rep.Set(status.Check{ID: CheckRouter, Title: titleRouter, Level: status.Pending,
		Message: "Lost contact with your router (it may be restarting); looking for it again.",
		Detail:  map[string]string{"error": err.Error()}})
	for _, p := range c.opts.Ports {
		c.rep.Set(status.Check{ID: p.CheckID(), Title: mappingTitle(p), Level: status.Pending,
			Message: "Waiting for the router.", Detail: map[string]string{"protocol": strings.ToLower(p.Proto), "port": strconv.Itoa(p.Port)}})
	}
}

func externalCheck(st extState, raw string, err error, connection string) status.Check {
	c := status.Check{ID: CheckExternal, Title: titleExternal,
		Detail: map[string]string{"kind": string(st.kind)}}
	if st.addr.IsValid() {
		c.Detail["address"] = st.addr.String()
	}
	switch st.kind {
	case kindPublic:
		c.Level = status.OK
		c.Message = fmt.Sprintf("Your home's internet address is %s.", st.addr)
	case kindCGNAT:
		c.Level = status.Error
		c.Message = fmt.Sprintf("Your internet provider shares one internet address between many homes (carrier-grade NAT; the router only has %s). People outside cannot reach the box through your router.", st.addr)
		c.Action = actionTor
	case kindPrivate:
		c.Level = status.Error
		c.Message = fmt.Sprintf("Your router sits behind another router or modem (it only has the private address %s), so the ports it opens do not reach the internet.", st.addr)
		c.Action = "Set the provider's modem to bridge mode, or open the same ports on it too. Otherwise turn on the onion address (Tor) in Settings → Network."
	default:
		c.Level = status.Error
		if raw != "" {
			c.Detail["router_said"] = clip(raw, 60)
		}
		if err != nil {
			c.Detail["error"] = err.Error()
		}
		if connection != "" {
			c.Detail["connection"] = connection
		}
		if connection != "" && !strings.EqualFold(connection, "Connected") {
			c.Message = "Your router says it is not connected to the internet right now."
			c.Action = "Check your router's internet connection (its lights or its settings page). The box keeps checking."
		} else {
			c.Message = "Your router does not have a public internet address of its own. Most often your internet provider shares one address between many homes (carrier-grade NAT), and then people outside cannot reach the box through your router."
			c.Action = actionTor
		}
	}
	return c
}

func mappingTitle(p Port) string {
	d := p.Description
	if d == "" {
		d = "Port"
	}
	return fmt.Sprintf("%s (port %d %s)", clip(d, 60), p.Port, protoName(p.Proto))
}

func mappingOK(p Port, lan netip.Addr, ext extState, lease uint32) status.Check {
	c := status.Check{ID: p.CheckID(), Title: mappingTitle(p), Level: status.OK,
		Message: fmt.Sprintf("The router forwards port %d (%s) to this box.", p.Port, protoName(p.Proto)),
		Detail: map[string]string{"protocol": strings.ToLower(p.Proto), "port": strconv.Itoa(p.Port),
			"internal": netip.AddrPortFrom(lan, uint16(p.Port)).String(), "lease": strconv.FormatUint(uint64(lease), 10)}}
	if ext.addr.IsValid() {
		c.Detail["external"] = netip.AddrPortFrom(ext.addr, uint16(p.Port)).String()
	}
	if ext.kind != kindPublic {
		// Forwarded, but to nowhere reachable: never call that success.
		c.Level = status.Warn
		c.Message = fmt.Sprintf("The router forwards port %d (%s) to this box, but your internet address cannot be reached from outside (see “%s”).", p.Port, protoName(p.Proto), titleExternal)
		c.Action = "Follow the advice under “" + titleExternal + "”."
	}
	return c
}

func mappingRefused(p Port, lan netip.Addr, ext extState, err error, other string) status.Check {
	code := upnpCode(err)
	if code == 0 && httpStatusOnly(err, 501) {
		code = 501
	}
	c := status.Check{ID: p.CheckID(), Title: mappingTitle(p), Level: status.Error,
		Detail: map[string]string{"protocol": strings.ToLower(p.Proto), "port": strconv.Itoa(p.Port),
			"internal": netip.AddrPortFrom(lan, uint16(p.Port)).String(), "error": err.Error()}}
	if code != 0 {
		c.Detail["code"] = strconv.Itoa(code)
	}
	port, proto := p.Port, protoName(p.Proto)
	byHand := fmt.Sprintf("forward port %d (%s) to %s by hand in your router's settings page", port, proto, lan)
	switch code {
	case 606:
		c.Message = fmt.Sprintf("Your router does not let the box open port %d.", port)
		c.Action = "Open your router's settings page and allow devices to change port forwarding (UPnP), or " + byHand + "."
	case 718:
		if other != "" {
			c.Detail["other_device"] = other
			c.Message = fmt.Sprintf("Port %d (%s) on your router is already forwarded to another device (%s).", port, proto, other)
		} else {
			c.Message = fmt.Sprintf("Your router refused to forward port %d (%s): another device already uses it, or the router's rules do not allow it.", port, proto)
		}
		c.Action = fmt.Sprintf("Open your router's settings page, find port %d under port forwarding, and remove the entry that points to another device; or %s.", port, byHand)
	case 728:
		c.Message = "Your router's list of forwarded ports is full."
		c.Action = "Open your router's settings page and delete port forwardings you no longer use."
	case 729:
		c.Message = fmt.Sprintf("Your router's own settings (its firewall or another forwarding rule) block port %d (%s).", port, proto)
		c.Action = fmt.Sprintf("Open your router's settings page and remove its own rule for port %d, or %s.", port, byHand)
	case 724, 726, 727, 732:
		c.Message = fmt.Sprintf("Your router cannot forward port %d (%s) the way the box needs.", port, proto)
		c.Action = strings.ToUpper(byHand[:1]) + byHand[1:] + "."
	case 501:
		if ext.kind != kindPublic {
			c.Message = fmt.Sprintf("Your router could not forward port %d (%s): it has no public internet address (see “%s”).", port, proto, titleExternal)
			c.Action = "Follow the advice under “" + titleExternal + "”."
		} else {
			c.Message = fmt.Sprintf("Your router failed to forward port %d (%s).", port, proto)
			c.Action = "Restart your router. If this stays, " + byHand + "."
		}
	default:
		c.Message = fmt.Sprintf("Your router gave an error when asked to forward port %d (%s).", port, proto)
		c.Action = "Restart your router. If this stays, " + byHand + "."
	}
	return c
}
