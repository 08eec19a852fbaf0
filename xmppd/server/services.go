package server

import (
	"errors"
	"strings"
	"sync"

	"mellium.im/xmpp/jid"

	"github.com/hearthchat/hearth/xmppd/stream"
)

// Services: subdomains the server hosts itself, such as upload.<domain>
// (XEP-0363), proxy.<domain> (XEP-0065) and groups.<domain> (MUC). Before
// this the server knew only its one domain, so a stanza to
// upload.<domain> went to the s2s hook and bounced remote-server-not-found.
//
// A module makes its service with AddService and registers on the
// returned *Service what it answers, the same way it would on the server:
//
//	svc := srv.AddService("upload."+srv.Domain, "File upload")
//	svc.AddIdentity(server.Identity{Category: "store", Type: "file", Name: "File upload"})
//	svc.AddFeature(nsUpload)
//	svc.HandleIQ("get", nsUpload, "request", h)
//
// The server answers disco#info (identities, features, extension forms)
// and disco#items (empty unless SetItems) for the service's JID, bounces
// an iq nobody handles with service-unavailable, and lists the service in
// its own disco#items (the disco module shows DiscoItems). Stanzas reach
// the service after the sender's outgoing hooks (MessageOut, PresenceOut)
// and before the s2s hook, whether they are addressed to the bare service
// domain or to a JID on it (room@groups.<domain>/nick: st.To keeps all of
// it). IsLocal stays false for service JIDs: they are not accounts.
//
// Who may use a service is the service's rule: the handler sees st.From
// (stamped by the server for local senders; the upload service and the
// bytestream proxy refuse anyone but local accounts with LocalSender).
// s2s does not yet accept stanzas for service domains from other servers;
// a federated group-chat host will need that added there.

// Service is one hosted subdomain. Its methods may be called at any time;
// they are safe for concurrent use.
type Service struct {
	host string

	mu         sync.RWMutex
	identities []Identity
	features   []string
	disco      []func(from jid.JID) []*stream.Element
	items      func(st *Stanza) ([]DiscoItem, error)
	iq         map[iqKey]IQHandler
	other      func(st *Stanza)
	fullIQ     func(st *Stanza)
}

type servicesKey struct{}

type services struct {
	mu sync.RWMutex
	m  map[string]*Service // by lower-case host
}

func (s *Server) services() *services {
	return State(s, servicesKey{}, func() *services { return &services{m: map[string]*Service{}} })
}

// AddService makes the server answer for host (a full domain, normally a
// subdomain of s.Domain such as "upload."+s.Domain) and, when name is not
// empty, lists it in the domain's disco#items under name. Adding a host
// twice returns the same Service (a module registered twice must not lose
// the handlers); it panics on a host that is not a valid domain or is the
// server's own domain, which is a programming error.
func (s *Server) AddService(host, name string) *Service {
	j, err := jid.Parse(host)
	if err != nil || j.Localpart() != "" || j.Resourcepart() != "" {
		panic("server: AddService: bad host " + host)
	}
	h := strings.ToLower(j.Domainpart())
	if h == strings.ToLower(s.Domain) {
		panic("server: AddService: " + host + " is the server's own domain")
	}
	sv := s.services()
	sv.mu.Lock()
	if svc, ok := sv.m[h]; ok {
		sv.mu.Unlock()
		return svc
	}
	svc := &Service{host: h, iq: map[iqKey]IQHandler{}}
	sv.m[h] = svc
	sv.mu.Unlock()
	if name != "" {
		s.AddDiscoItem(DiscoItem{JID: h, Name: name})
	}
	return svc
}

// Service returns the service hosted at domain (any case), or nil.
func (s *Server) Service(domain string) *Service {
	sv := s.services()
	sv.mu.RLock()
	defer sv.mu.RUnlock()
	return sv.m[strings.ToLower(domain)]
}

// IsService reports whether j is a hosted service's domain or a JID on it.
func (s *Server) IsService(j jid.JID) bool { return s.Service(j.Domainpart()) != nil }

// LocalSender reports whether st comes from one of the server's own
// accounts (a bound local session or a JID of our domain with a
// localpart) — what a service that is only for members checks.
func (s *Server) LocalSender(st *Stanza) bool {
	if st.Origin != nil {
		return true
	}
	return st.From.Localpart() != "" && s.IsLocal(st.From)
}

// Host is the service's domain, lower case.
func (svc *Service) Host() string { return svc.host }

// JID is the service's domain JID.
func (svc *Service) JID() jid.JID { return jid.MustParse(svc.host) }

// AddIdentity adds a disco identity of the service.
func (svc *Service) AddIdentity(id Identity) {
	svc.mu.Lock()
	defer svc.mu.Unlock()
	svc.identities = append(svc.identities, id)
}

// AddFeature advertises a disco#info feature of the service.
func (svc *Service) AddFeature(ns string) {
	svc.mu.Lock()
	defer svc.mu.Unlock()
	svc.features = append(svc.features, ns)
}

// AddDiscoExtension adds XEP-0128 forms to the service's disco#info (the
// upload service's max-file-size, XEP-0363 §2). from is who asks.
func (svc *Service) AddDiscoExtension(fn func(from jid.JID) []*stream.Element) {
	svc.mu.Lock()
	defer svc.mu.Unlock()
	svc.disco = append(svc.disco, fn)
}

// SetItems answers disco#items to the service (a group-chat host lists
// its rooms); without it the answer is empty.
func (svc *Service) SetItems(fn func(st *Stanza) ([]DiscoItem, error)) {
	svc.mu.Lock()
	defer svc.mu.Unlock()
	svc.items = fn
}

// HandleIQ registers h for iqs of type typ ("get" or "set") with payload
// space+local addressed to the service or a JID on it. The result's
// 'from' is the address the iq was sent to.
func (svc *Service) HandleIQ(typ, space, local string, h IQHandler) {
	svc.mu.Lock()
	defer svc.mu.Unlock()
	svc.iq[iqKey{ToServer, typ, space, local}] = h
}

// Handle takes every other stanza for the service: messages, presence,
// and iq results and errors (answers to the service's own requests).
// Without it messages are bounced with service-unavailable and the rest
// dropped.
func (svc *Service) Handle(fn func(st *Stanza)) {
	svc.mu.Lock()
	defer svc.mu.Unlock()
	svc.other = fn
}

// HandleFullIQ takes every iq get or set addressed to a JID with a
// resource on the service (a MUC occupant, room@groups/nick) instead of
// the HandleIQ handlers: fn answers, forwards or bounces it itself
// (XEP-0045 forwards such iqs to the occupant's client, so no handler of
// the server may answer for it).
func (svc *Service) HandleFullIQ(fn func(st *Stanza)) {
	svc.mu.Lock()
	defer svc.mu.Unlock()
	svc.fullIQ = fn
}

// Info is the service's disco#info <query/> for from.
func (svc *Service) Info(from jid.JID) *stream.Element {
	svc.mu.RLock()
	ids := append([]Identity(nil), svc.identities...)
	feats := append([]string{nsDiscoInfo, nsDiscoItems}, svc.features...)
	ext := svc.disco
	svc.mu.RUnlock()
	q := stream.New(nsDiscoInfo, "query")
	for _, id := range ids {
		el := stream.New(nsDiscoInfo, "identity", "category", id.Category, "type", id.Type)
		el.Set("name", id.Name)
		q.Add(el)
	}
	seen := map[string]bool{}
	for _, f := range feats {
		if !seen[f] {
			seen[f] = true
			q.Add(stream.New(nsDiscoInfo, "feature", "var", f))
		}
	}
	for _, fn := range ext {
		q.Add(fn(from)...)
	}
	return q
}

// Disco namespaces (the disco module has the same constants; the server
// answers for services itself so that a service module needs no disco
// import).
const (
	nsDiscoInfo  = "http://jabber.org/protocol/disco#info"
	nsDiscoItems = "http://jabber.org/protocol/disco#items"
)

// toService hands st to the service its 'to' names; false if it names
// none.
func (s *Server) toService(st *Stanza) bool {
	svc := s.Service(st.To.Domainpart())
	if svc == nil {
		return false
	}
	svc.mu.RLock()
	other, fullIQ := svc.other, svc.fullIQ
	svc.mu.RUnlock()
	switch st.El.Local {
	case "iq":
		switch st.Type() {
		case "get", "set":
			if fullIQ != nil && st.To.Resourcepart() != "" {
				fullIQ(st)
				return true
			}
			s.serviceIQ(svc, st)
			return true
		}
	}
	if other != nil {
		other(st)
		return true
	}
	if st.El.Local == "message" && st.Type() != "error" {
		s.bounce(st, ErrServiceUnavailable)
	}
	return true
}

func (s *Server) serviceIQ(svc *Service, st *Stanza) {
	payload := st.El.FirstChild()
	if payload == nil || len(st.El.Children()) != 1 {
		s.bounce(st, ErrBadRequest)
		return
	}
	var h IQHandler
	switch {
	case st.Type() == "get" && payload.Space == nsDiscoInfo && payload.Local == "query" && st.To.Localpart() == "" && st.To.Resourcepart() == "":
		h = func(st *Stanza) (*stream.Element, error) {
			if payload.Get("node") != "" {
				return nil, ErrItemNotFound
			}
			return svc.Info(st.From), nil
		}
	case st.Type() == "get" && payload.Space == nsDiscoItems && payload.Local == "query" && st.To.Localpart() == "" && st.To.Resourcepart() == "":
		h = func(st *Stanza) (*stream.Element, error) {
			svc.mu.RLock()
			items := svc.items
			svc.mu.RUnlock()
			q := stream.New(nsDiscoItems, "query")
			if items == nil {
				if payload.Get("node") != "" {
					return nil, ErrItemNotFound
				}
				return q, nil
			}
			l, err := items(st)
			if err != nil {
				return nil, err
			}
			for _, it := range l {
				el := stream.New(nsDiscoItems, "item", "jid", it.JID)
				el.Set("name", it.Name)
				q.Add(el)
			}
			return q, nil
		}
	}
	if h == nil {
		svc.mu.RLock()
		h = svc.iq[iqKey{ToServer, st.Type(), payload.Space, payload.Local}]
		svc.mu.RUnlock()
	}
	if h == nil {
		s.bounce(st, ErrServiceUnavailable)
		return
	}
	res, err := h(st)
	if err != nil {
		if !errors.As(err, new(*StanzaError)) {
			s.Log.Error("service iq handler", "service", svc.host, "ns", payload.Space, "err", err)
		}
		s.bounce(st, err)
		return
	}
	reply := stream.New(stream.NSClient, "iq", "type", "result", "id", st.El.Get("id"))
	reply.Set("to", st.From.String())
	reply.Set("from", st.El.Get("to"))
	reply.Add(res)
	s.reply(st, reply)
}
