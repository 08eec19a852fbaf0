package server

import "github.com/hearthchat/hearth/xmppd/session"

// EnableCarbons turns XEP-0280 carbons on for a session without an iq:
// Bind 2 (XEP-0386) may enable them inline while binding. The carbons
// module subscribes; the module that negotiates the bind fires it.
var EnableCarbons = NewEvent[*session.Session]("enable-carbons")
