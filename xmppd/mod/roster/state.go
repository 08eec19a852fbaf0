package roster

import "github.com/hearthchat/hearth/xmppd/server"

// The subscription state machine of RFC 6121 §3 and Appendix A, as a pure
// function over one record so that it can be tested state by state. The
// presence module feeds it the four subscription stanza types in both
// directions and carries out the Outcome.

// Event is a subscription stanza, seen from the user whose record changes.
type Event int

// Outbound events are sent by the user, inbound ones by the contact.
const (
	OutSubscribe Event = iota
	OutSubscribed
	OutUnsubscribe
	OutUnsubscribed
	InSubscribe
	InSubscribed
	InUnsubscribe
	InUnsubscribed
)

var eventNames = [...]string{"out subscribe", "out subscribed", "out unsubscribe", "out unsubscribed",
	"in subscribe", "in subscribed", "in unsubscribe", "in unsubscribed"}

func (e Event) String() string { return eventNames[e] }

// EventFor maps a presence type and direction to an Event.
func EventFor(typ string, outbound bool) (Event, bool) {
	var e Event
	switch typ {
	case "subscribe":
		e = OutSubscribe
	case "subscribed":
		e = OutSubscribed
	case "unsubscribe":
		e = OutUnsubscribe
	case "unsubscribed":
		e = OutUnsubscribed
	default:
		return 0, false
	}
	if !outbound {
		e += InSubscribe
	}
	return e, true
}

// Outcome says what to do with the stanza besides the state change. It
// is the server's type, so the presence module can act on it without
// importing this package.
type Outcome = server.SubOutcome

// Apply changes it for event ev and reports what else to do.
func Apply(it *Item, ev Event) Outcome {
	to, from := it.Sub.HasTo(), it.Sub.HasFrom()
	var o Outcome
	switch ev {
	case OutSubscribe:
		// §3.1.2: the item appears in the roster with ask='subscribe'.
		// The request is routed even if nothing changes, so that a
		// contact whose server lost state can answer again.
		it.Listed = true
		if !to {
			it.Ask = true
		}
		o.Forward = true
	case OutSubscribed:
		switch {
		case from:
			// Already granted: nothing to do.
		case it.PendingIn:
			from, it.PendingIn, it.Approved = true, false, false
			it.Listed = true
			o.Forward, o.SendPresence = true, true
		default:
			// §3.4: pre-approval; not routed.
			it.Approved, it.Listed = true, true
		}
	case OutUnsubscribe:
		to, it.Ask = false, false
		o.Forward = true
	case OutUnsubscribed:
		switch {
		case from || it.PendingIn:
			o.Forward = true
			o.SendUnavailable = from
			from, it.PendingIn, it.Approved = false, false, false
		case it.Approved:
			// §3.4: cancelling a pre-approval is not routed.
			it.Approved = false
		}
	case InSubscribe:
		switch {
		case from:
			o.AutoReply = true
		case it.Approved:
			from, it.Approved = true, false
			o.AutoReply, o.SendPresence = true, true
		case it.PendingIn:
			// Known already: do not ring the user's devices again.
		default:
			it.PendingIn = true
			o.Forward = true
		}
	case InSubscribed:
		if it.Ask {
			to, it.Ask = true, false
			o.Forward = true
		}
	case InUnsubscribe:
		if from || it.PendingIn {
			o.Forward = true
			o.SendUnavailable = from
			from, it.PendingIn, it.Approved = false, false, false
		}
	case InUnsubscribed:
		if to || it.Ask {
			to, it.Ask = false, false
			o.Forward = true
		}
	}
	it.Sub = makeSub(to, from)
	if !it.PendingIn {
		it.Request = nil
	}
	return o
}
