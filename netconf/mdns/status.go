package mdns

import (
	"errors"
	"fmt"
	"strings"

	"github.com/hearthchat/hearth/netconf/status"
)

// url is how people type the address: the port only when it is not 80.
func (r *Responder) url(host string) string {
	if r.opts.HTTPPort == 80 {
		return "http://" + host
	}
	return fmt.Sprintf("http://%s:%d", host, r.opts.HTTPPort)
}

// Off reports that the box does not announce its name, and why.
func Off(rep status.Reporter, why string) {
	rep.Set(status.Check{ID: CheckID, Title: Title, Level: status.Off, Message: why})
}

func (r *Responder) pending() {
	wanted := r.opts.Hostname + ".local"
	r.opts.Reporter.Set(status.Check{ID: CheckID, Title: Title, Level: status.Pending,
		Message: fmt.Sprintf("Checking that no other device on the home network is called %s…", wanted),
		Detail:  map[string]string{"wanted": wanted}})
}

// claimed reports the name won on ifs.
func (r *Responder) claimed(z zone, ifs []lanIface) {
	name := strings.TrimSuffix(z.host, ".")
	wanted := r.opts.Hostname + ".local"
	d := map[string]string{
		"name":       name,
		"url":        r.url(name),
		"wanted":     wanted,
		"interfaces": ifaceNames(ifs),
		"addresses":  ifaceAddrs(ifs),
	}
	if name == wanted {
		r.opts.Reporter.Set(status.Check{ID: CheckID, Title: Title, Level: status.OK,
			Message: "Phones and computers at home can open " + r.url(name), Detail: d})
		return
	}
	r.opts.Reporter.Set(status.Check{ID: CheckID, Title: Title, Level: status.Warn,
		Message: fmt.Sprintf("Another device already calls itself %s; this box is %s", wanted, r.url(name)),
		Action: fmt.Sprintf("Use %s on this network, or give this box another name in Settings → Network "+
			"(or rename or switch off the other device called %s).", r.url(name), wanted),
		Detail: d})
}

// failed reports why the responder is not answering.
func (r *Responder) failed(err error) {
	d := map[string]string{"wanted": r.opts.Hostname + ".local"}
	if err != nil {
		d["error"] = err.Error()
	}
	c := status.Check{ID: CheckID, Title: Title, Level: status.Error, Detail: d}
	if errors.Is(err, errNoLAN) {
		c.Message = fmt.Sprintf("This box is not connected to a home network, so %s cannot work.", r.url(r.opts.Hostname+".local"))
		c.Action = "Connect the box to your router with a network cable, then wait a minute."
		if len(r.opts.Interfaces) > 0 {
			d["interfaces"] = strings.Join(r.opts.Interfaces, ", ")
		}
	} else {
		c.Message = fmt.Sprintf("This box could not start answering to %s.local.", r.opts.Hostname)
		c.Action = "Restart the box. If this message stays, another program on the box may be using the home-network name service (port 5353)."
	}
	r.opts.Reporter.Set(c)
}
