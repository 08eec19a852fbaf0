package config

// Site is the setup pages' section: what the person who set the box up
// chose, in their words.
type Site struct {
	// Name is the chat's name as members see it on the pages ("Riverside
	// Rowing Club"). Empty until setup.
	Name string `json:"name,omitempty"`
	// Reach is how members reach the box, as chosen in setup: "home"
	// (home network only), "internet" (an address on the internet through
	// a dynamic-DNS service) or "tor". Empty until chosen.
	Reach string `json:"reach,omitempty"`
	// Admin is the account the setup pages created for the person who
	// claimed the box.
	Admin string `json:"admin,omitempty"`
	// Done is set when the setup pages' last step was reached.
	Done bool `json:"done,omitempty"`
	// MembersInvite lets members (not only admins) create invitations;
	// limited accounts never can.
	MembersInvite bool `json:"members_invite,omitempty"`
	// Abuse lists where people report abuse (XEP-0157 abuse-addresses,
	// in the server's disco#info): URIs ("mailto:…", "xmpp:…",
	// "https://…") or plain e-mail addresses. Empty: the admins' XMPP
	// addresses.
	Abuse []string `json:"abuse,omitempty"`
}
