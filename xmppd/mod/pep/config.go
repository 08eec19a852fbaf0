package pep

import (
	"slices"
	"strconv"
	"strings"

	"github.com/hearthchat/hearth/xmppd/server"
	"github.com/hearthchat/hearth/xmppd/stream"
)

// Access models (XEP-0060 §4.5). authorize is not offered: PEP has no
// subscription requests to approve.
const (
	AccessOpen      = "open"
	AccessPresence  = "presence"
	AccessRoster    = "roster"
	AccessWhitelist = "whitelist"
)

// config is a node's configuration (the subset of XEP-0060 §16.4.3
// pubsub#node_config PEP clients set).
type config struct {
	Access   string   `json:"a"`
	Persist  bool     `json:"p"`
	MaxItems int      `json:"m"`
	SendLast string   `json:"s"` // never, on_sub, on_sub_and_presence
	NotifyRt bool     `json:"r"` // notify_retract
	NotifyDl bool     `json:"d"` // notify_delete
	Title    string   `json:"t,omitempty"`
	Type     string   `json:"y,omitempty"`
	Groups   []string `json:"g,omitempty"` // roster_groups_allowed (kept, see allowed)
}

// defaultConfig is what auto-create and create without options make:
// XEP-0163 §4.1 (presence access, the last item kept and sent on presence).
func defaultConfig() config {
	return config{Access: AccessPresence, Persist: true, MaxItems: 1, SendLast: "on_sub_and_presence", NotifyRt: true, NotifyDl: true}
}

func (c config) equal(d config) bool {
	return c.Access == d.Access && c.Persist == d.Persist && c.MaxItems == d.MaxItems &&
		c.SendLast == d.SendLast && c.NotifyRt == d.NotifyRt && c.NotifyDl == d.NotifyDl &&
		c.Title == d.Title && c.Type == d.Type && strings.Join(c.Groups, "\x00") == strings.Join(d.Groups, "\x00")
}

// keep is how many items the node keeps.
func (c config) keep() int {
	if !c.Persist {
		return 0
	}
	return c.MaxItems
}

// formFields reads a data form (XEP-0004) into var → values, without
// FORM_TYPE. ok is false for a malformed form.
func formFields(x *stream.Element) (map[string][]string, bool) {
	out := map[string][]string{}
	if x == nil {
		return out, true
	}
	if x.Space != nsData || x.Local != "x" {
		return nil, false
	}
	for _, f := range x.Children() {
		if f.Space != nsData || f.Local != "field" {
			continue
		}
		v := f.Get("var")
		if v == "" {
			return nil, false
		}
		if v == "FORM_TYPE" {
			continue
		}
		var vals []string
		for _, e := range f.Children() {
			if e.Space == nsData && e.Local == "value" {
				vals = append(vals, strings.TrimSpace(e.Text()))
			}
		}
		out[v] = vals
	}
	return out, true
}

func boolOf(vals []string) (bool, bool) {
	if len(vals) != 1 {
		return false, false
	}
	switch vals[0] {
	case "1", "true":
		return true, true
	case "0", "false":
		return false, true
	}
	return false, false
}

var errBadValue = &server.StanzaError{Type: "modify", Condition: "not-acceptable", Text: "unsupported node configuration value"}

// apply returns c changed by the form's fields, or an error naming what
// the service does not support (an unknown field, a bad value).
func (c config) apply(fields map[string][]string) (config, error) {
	one := func(vals []string) (string, bool) {
		if len(vals) != 1 {
			return "", false
		}
		return vals[0], true
	}
	for k, vals := range fields {
		var ok bool
		if len(vals) == 0 && k != "pubsub#roster_groups_allowed" && k != "pubsub#title" && k != "pubsub#type" {
			// A field submitted without a value leaves the setting as
			// it is: Converse sends back every field of the form it was
			// given, empty where it has no opinion (publish_model among
			// them), and such a form was refused as a bad value.
			continue
		}
		switch k {
		case "pubsub#access_model":
			var v string
			v, ok = one(vals)
			switch v {
			case AccessOpen, AccessPresence, AccessRoster, AccessWhitelist:
				c.Access = v
			default:
				return c, &server.StanzaError{Type: "modify", Condition: "not-acceptable",
					Text: "unsupported access model " + strconv.Quote(v), Extra: stream.New(nsErrors, "unsupported-access-model")}
			}
		case "pubsub#persist_items":
			c.Persist, ok = boolOf(vals)
		case "pubsub#max_items":
			var v string
			if v, ok = one(vals); ok {
				if v == "max" {
					c.MaxItems = MaxItems
				} else {
					n, err := strconv.Atoi(v)
					// XEP-0060 §7.1.3.6 leaves the cap to the service;
					// more than it is refused rather than silently cut
					// (the client would believe it had more history).
					ok = err == nil && n >= 1 && n <= MaxItems
					c.MaxItems = n
				}
			}
		case "pubsub#send_last_published_item":
			var v string
			if v, ok = one(vals); ok {
				switch v {
				case "never", "on_sub", "on_sub_and_presence":
					c.SendLast = v
				default:
					ok = false
				}
			}
		case "pubsub#notify_retract":
			c.NotifyRt, ok = boolOf(vals)
		case "pubsub#notify_delete":
			c.NotifyDl, ok = boolOf(vals)
		case "pubsub#deliver_payloads", "pubsub#deliver_notifications", "pubsub#presence_based_delivery":
			// Always on for PEP: only "1" is accepted.
			var b bool
			b, ok = boolOf(vals)
			ok = ok && b
		case "pubsub#publish_model":
			var v string
			v, ok = one(vals)
			ok = ok && v == "publishers"
		case "pubsub#title":
			if len(vals) <= 1 {
				c.Title, ok = strings.Join(vals, ""), len(strings.Join(vals, "")) <= 1024
			}
		case "pubsub#type":
			if len(vals) <= 1 {
				c.Type, ok = strings.Join(vals, ""), len(strings.Join(vals, "")) <= 1024
			}
		case "pubsub#roster_groups_allowed":
			// A set: kept sorted, so that publish-options naming the
			// same groups in another order meet the precondition.
			ok = len(vals) <= 64
			c.Groups = slices.Compact(slices.Sorted(slices.Values(vals)))
		default:
			return c, &server.StanzaError{Type: "modify", Condition: "not-acceptable", Text: "unsupported node configuration field " + strconv.Quote(k)}
		}
		if !ok {
			return c, &server.StanzaError{Type: "modify", Condition: "not-acceptable", Text: "bad value for " + k}
		}
	}
	return c, nil
}

// form renders c as the pubsub#owner configure form.
func (c config) form() *stream.Element {
	x := stream.New(nsData, "x", "type", "form")
	field := func(v, typ string, vals ...string) {
		f := stream.New(nsData, "field", "var", v, "type", typ)
		for _, s := range vals {
			f.Add(stream.New(nsData, "value").AddText(s))
		}
		x.Add(f)
	}
	b := func(v bool) string {
		if v {
			return "1"
		}
		return "0"
	}
	field("FORM_TYPE", "hidden", nsNodeConfig)
	field("pubsub#access_model", "list-single", c.Access)
	field("pubsub#persist_items", "boolean", b(c.Persist))
	field("pubsub#max_items", "text-single", strconv.Itoa(c.MaxItems))
	field("pubsub#send_last_published_item", "list-single", c.SendLast)
	field("pubsub#notify_retract", "boolean", b(c.NotifyRt))
	field("pubsub#notify_delete", "boolean", b(c.NotifyDl))
	field("pubsub#deliver_payloads", "boolean", "1")
	field("pubsub#deliver_notifications", "boolean", "1")
	field("pubsub#publish_model", "list-single", "publishers")
	field("pubsub#title", "text-single", c.Title)
	field("pubsub#type", "text-single", c.Type)
	field("pubsub#roster_groups_allowed", "list-multi", c.Groups...)
	return x
}
