package server

import (
	"slices"
	"sync"

	"mellium.im/xmpp/jid"

	"github.com/hearthchat/hearth/xmppd/stream"
)

// Command is an XEP-0050 ad-hoc command a module offers to the box's own
// accounts (the invites module's XEP-0401 commands). The adhoc module
// speaks the protocol (listing, sessions, actions); the module that owns
// the command only answers Run. Declared here so neither imports the
// other.
type Command struct {
	Node, Name string
	// Allowed reports whether the local account user may list and run it.
	Allowed func(user string) bool
	// Run runs one stage for user. form is the jabber:x:data form the
	// client submitted (nil when the command starts).
	Run func(user string, form *stream.Element) (CommandReply, error)
}

// CommandReply is one stage's answer.
type CommandReply struct {
	// Form is a form to fill in (type "form", the command goes on) or
	// the result (type "result").
	Form *stream.Element
	// Note is shown to the user ("info" note).
	Note string
	// Done completes the command.
	Done bool
}

type commandsKey struct{}

type commands struct {
	mu sync.Mutex
	l  []Command
}

func (s *Server) commands() *commands {
	return State(s, commandsKey{}, func() *commands { return new(commands) })
}

// AddCommand offers an ad-hoc command.
func (s *Server) AddCommand(c Command) {
	cs := s.commands()
	cs.mu.Lock()
	defer cs.mu.Unlock()
	cs.l = append(cs.l, c)
}

// Commands lists the ad-hoc commands modules offer.
func (s *Server) Commands() []Command {
	cs := s.commands()
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return slices.Clone(cs.l)
}

// DiscoNodeHandler answers disco#info (items false) or disco#items for a
// node of the server's own JID.
type DiscoNodeHandler func(from jid.JID, items bool, node string) (*stream.Element, error)

type discoNodesKey struct{}

type discoNodes struct {
	mu sync.Mutex
	m  map[string]DiscoNodeHandler
}

func (s *Server) discoNodes() *discoNodes {
	return State(s, discoNodesKey{}, func() *discoNodes { return &discoNodes{m: map[string]DiscoNodeHandler{}} })
}

// HandleDiscoNode answers disco queries to the server for node (the
// XEP-0050 commands node), so that the module owning the node need not
// import disco, and disco need not know the node.
func (s *Server) HandleDiscoNode(node string, h DiscoNodeHandler) {
	d := s.discoNodes()
	d.mu.Lock()
	defer d.mu.Unlock()
	d.m[node] = h
}

// DiscoNode returns the handler for node, or nil.
func (s *Server) DiscoNode(node string) DiscoNodeHandler {
	d := s.discoNodes()
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.m[node]
}
