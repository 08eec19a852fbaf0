package server

// Mention is the payload of Mentioned.
type Mention struct {
	// User is the local account mentioned (its localpart).
	User string
	// Room is the room's bare JID; From is the message's room/nick
	// address, the sender as the member's client shows it.
	Room string
	From string
	// Sender is the sender's real bare JID: a listener honours User's
	// blocklist with it (the room hides it from User, not from the
	// server).
	Sender string
	// Body is the message's body. Listeners that pass a summary on to
	// third parties (push) must not send it.
	Body string
}

// Mentioned fires when a group chat message in a members-only room names
// a member who is not in the room (by nickname or account name in the
// body, or an XEP-0372 mention reference): that member got no copy of it,
// and only the room archive has it. The MUC module fires it once per
// member and message, after accepting the message; push listens and wakes
// the member's phones (issue 12). Never for the sender, for occupants
// (they have the message), for non-members, or in rooms open to anyone
// (any passer-by could wake members' phones).
var Mentioned = NewEvent[Mention]("mentioned")
