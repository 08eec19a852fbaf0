package muc

import (
	"slices"
	"strconv"
	"strings"
	"sync"

	bolt "go.etcd.io/bbolt"
	"mellium.im/xmpp/jid"

	"github.com/hearthchat/hearth/xmppd/server"
	"github.com/hearthchat/hearth/xmppd/stream"
)

// Config is a room's configuration (muc#roomconfig).
type Config struct {
	Name        string `json:"name,omitempty"`
	Description string `json:"desc,omitempty"`
	Persistent  bool   `json:"persistent"`
	Public      bool   `json:"public"`
	MembersOnly bool   `json:"members_only"`
	Moderated   bool   `json:"moderated"`
	Password    string `json:"password,omitempty"`
	// AllowInvites: participants may invite (in a members-only room the
	// invitee then becomes a member); otherwise only admins and owners.
	AllowInvites bool `json:"allow_invites"`
	// WhoIs: "moderators" (semi-anonymous) or "anyone" (non-anonymous).
	WhoIs string `json:"whois"`
	// ChangeSubject: participants may change the subject.
	ChangeSubject bool `json:"change_subject"`
	// MaxHistory is the most messages sent as history on join.
	MaxHistory int `json:"max_history"`
	// AllowPM (muc#roomconfig_allowpm): whose private messages and iqs
	// the room passes on to another occupant — "anyone", "participants"
	// (not visitors), "moderators" or "none"; "" (rooms stored before
	// the field existed) is "anyone".
	AllowPM string `json:"allow_pm,omitempty"`
	// RetentionDays is how long the room's archive keeps messages; 0
	// is the server's setting (retention.go).
	RetentionDays int `json:"retention_days,omitempty"`
}

// defaultConfig is what a room made by a join starts with: a club's
// rooms live on and are found in the list; whois moderators as XEP-0045
// recommends.
func defaultConfig() Config {
	return Config{Persistent: true, Public: true, AllowInvites: true, WhoIs: "moderators", MaxHistory: DefaultHistory, AllowPM: "anyone"}
}

// roomState is what is stored of a room.
type roomState struct {
	Config  Config            `json:"config"`
	Affs    map[string]string `json:"affs"` // bare JID → owner/admin/member/outcast
	Subject string            `json:"subject,omitempty"`
	SubjBy  string            `json:"subject_by,omitempty"` // nick
	Creator string            `json:"creator,omitempty"`    // local user charged, "" for server rooms
	// AllLocal: every account of the server is a member (the club's
	// default room, club.go).
	AllLocal bool `json:"all_local,omitempty"`
	// Nicks are registered nicknames: bare JID → nick (register.go).
	Nicks map[string]string `json:"nicks,omitempty"`
	// AvatarHash: SHA-1 of the room vCard's photo (vcard.go).
	AvatarHash string `json:"avatar_hash,omitempty"`
	// LockedUntil (unix seconds): a room made by a join is locked until
	// its owner configures it or this passes (lock.go); 0 is unlocked.
	// Stored, so that a restart does not open a room early.
	LockedUntil int64 `json:"locked_until,omitempty"`
	// Archive bookkeeping (archive.go): stored apart from the room's
	// record (muc_arcmeta), in the transaction of each append and trim,
	// so that a message does not rewrite the room with its affiliations.
	arc arcMeta
}

type room struct {
	name   string
	domain string // the server's, for AllLocal
	mu     sync.Mutex
	st     roomState
	occ    map[string]*occupant // by folded nick
	slab   slab                 // where occ's occupants live (slab.go)
	gone   bool                 // destroyed: a stanza that raced the destroy finds no room
	ob     outbox               // messages waiting for their commit (fanout.go)
}

func newRoom(name, domain string, s roomState) *room {
	if s.Affs == nil {
		s.Affs = map[string]string{}
	}
	return &room{name: name, domain: domain, st: s, occ: map[string]*occupant{}}
}

// aff is bare's affiliation ("none" if it has none).
func (r *room) aff(bare string) string {
	if a, ok := r.st.Affs[bare]; ok {
		return a
	}
	if r.st.AllLocal {
		if j, err := jid.Parse(bare); err == nil && j.Localpart() != "" && strings.EqualFold(j.Domainpart(), r.domain) {
			return "member"
		}
	}
	return "none"
}

// affRankOf orders affiliations; ok is false for an unknown one.
func affRankOf(a string) (int, bool) {
	switch a {
	case "outcast":
		return -1, true
	case "none":
		return 0, true
	case "member":
		return 1, true
	case "admin":
		return 2, true
	case "owner":
		return 3, true
	}
	return 0, false
}

func affRank(a string) int { n, _ := affRankOf(a); return n }

func validRole(r string) bool {
	return r == "none" || r == "visitor" || r == "participant" || r == "moderator"
}

// owners counts the owners.
func (r *room) owners() int {
	n := 0
	for _, a := range r.st.Affs {
		if a == "owner" {
			n++
		}
	}
	return n
}

// lookup finds the room named by st.To, or nil.
func (m *Service) lookup(name string) *room {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.rooms[name]
}

// create makes room name with owner bare (creator: the local user charged,
// "" for none) and commits it. It returns the room locked; an existing
// room is returned locked with created=false.
func (m *Service) create(name, owner, creator string, cfg Config, lockedUntil int64) (r *room, created bool, err error) {
	m.mu.Lock()
	if r = m.rooms[name]; r != nil {
		m.mu.Unlock()
		r.mu.Lock()
		return r, false, nil
	}
	r = newRoom(name, m.srv.Domain, roomState{Config: cfg, Creator: creator, LockedUntil: lockedUntil})
	if owner != "" {
		r.st.Affs[owner] = "owner"
	}
	if err := m.srv.Store.Batch(func(tx *bolt.Tx) error { return m.createTx(tx, r) }); err != nil {
		m.mu.Unlock()
		return nil, false, quotaErr(err)
	}
	m.rooms[name] = r
	r.mu.Lock()
	m.mu.Unlock()
	return r, true, nil
}

// remove destroys r (locked) in storage and memory.
func (m *Service) remove(r *room) error {
	if err := m.srv.Store.Batch(func(tx *bolt.Tx) error { return deleteRoomTx(tx, r.name, &r.st) }); err != nil {
		return err
	}
	r.gone = true
	m.mu.Lock()
	if m.rooms[r.name] == r {
		delete(m.rooms, r.name)
	}
	m.mu.Unlock()
	return nil
}

// features is the room's disco#info features.
func (r *room) features() []string {
	c := r.st.Config
	f := []string{NS, nsSID, nsOccID, nsMAM, NS + "#stable_id", NS + "#self-ping-optimization", nsRetract, nsModerate, nsVCard, nsRegister, nsRequest}
	pick := func(b bool, yes, no string) {
		if b {
			f = append(f, yes)
		} else {
			f = append(f, no)
		}
	}
	pick(c.Persistent, "muc_persistent", "muc_temporary")
	pick(c.Public, "muc_public", "muc_hidden")
	pick(c.MembersOnly, "muc_membersonly", "muc_open")
	pick(c.Moderated, "muc_moderated", "muc_unmoderated")
	pick(c.Password != "", "muc_passwordprotected", "muc_unsecured")
	pick(c.WhoIs == "anyone", "muc_nonanonymous", "muc_semianonymous")
	return f
}

func (m *Service) discoInfo(st *server.Stanza) (*stream.Element, error) {
	if st.To.Localpart() == "" || st.To.Resourcepart() != "" {
		return nil, server.ErrItemNotFound
	}
	node := st.El.FirstChild().Get("node")
	if node != "" && node != "x-roomuser-item" {
		return nil, server.ErrItemNotFound
	}
	r := m.lookup(st.To.Localpart())
	if r == nil {
		return nil, server.ErrItemNotFound
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.gone || r.lockedFor(bareOf(st.From), m.o.Now()) {
		return nil, server.ErrItemNotFound
	}
	q := stream.New(nsDiscoI, "query")
	if node != "" {
		// §7.12: the asker's registered nickname.
		q.Set("node", node)
		if n, ok := r.st.Nicks[bareOf(st.From)]; ok {
			q.Add(stream.New(nsDiscoI, "identity", "category", "conference", "type", "text", "name", n))
		}
		return q, nil
	}
	name := r.st.Config.Name
	if name == "" {
		name = r.name
	}
	q.Add(stream.New(nsDiscoI, "identity", "category", "conference", "type", "text", "name", name))
	for _, f := range r.features() {
		q.Add(stream.New(nsDiscoI, "feature", "var", f))
	}
	form := newForm("result", nsInfoForm)
	form.field("muc#roominfo_description", "", r.st.Config.Description)
	form.field("muc#roomconfig_roomname", "", r.st.Config.Name)
	form.field("muc#roominfo_subject", "", r.st.Subject)
	form.field("muc#roominfo_occupants", "", strconv.Itoa(len(r.occ)))
	form.field("muc#roomconfig_changesubject", "boolean", boolStr(r.st.Config.ChangeSubject))
	// Clients (Conversations) read allowpm here to offer private
	// messages only where the room passes them on.
	pm := r.st.Config.AllowPM
	if pm == "" {
		pm = "anyone"
	}
	form.field("muc#roomconfig_allowpm", "list-single", pm)
	if r.st.AvatarHash != "" {
		form.field("muc#roominfo_avatarhash", "text-multi", r.st.AvatarHash)
	}
	q.Add(form.el)
	return q, nil
}

// discoItems on a room lists its occupants to occupants only (XEP-0045
// §6.5 lets a service return an empty list to others).
func (m *Service) discoItems(st *server.Stanza) (*stream.Element, error) {
	if st.To.Resourcepart() != "" {
		return nil, server.ErrItemNotFound
	}
	r := m.lookup(st.To.Localpart())
	if r == nil {
		return nil, server.ErrItemNotFound
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	q := stream.New(nsDiscoIt, "query")
	if r.occupantOf(st.From) == nil {
		return q, nil
	}
	for _, o := range r.sortedOccupants() {
		q.Add(stream.New(nsDiscoIt, "item", "jid", m.roomJID(r.name)+"/"+o.nick))
	}
	return q, nil
}

// publicRooms is the service's disco#items: the public rooms.
func (m *Service) publicRooms(st *server.Stanza) ([]server.DiscoItem, error) {
	if st.El.FirstChild().Get("node") != "" {
		return nil, server.ErrItemNotFound
	}
	m.mu.Lock()
	rooms := make([]*room, 0, len(m.rooms))
	for _, r := range m.rooms {
		rooms = append(rooms, r)
	}
	m.mu.Unlock()
	var items []server.DiscoItem
	for _, r := range rooms {
		r.mu.Lock()
		if r.st.Config.Public && !r.gone && !r.locked(m.o.Now()) {
			name := r.st.Config.Name
			if name == "" {
				name = r.name
			}
			items = append(items, server.DiscoItem{JID: m.roomJID(r.name), Name: name})
		}
		r.mu.Unlock()
	}
	sortItems(items)
	return items, nil
}

// form is a jabber:x:data form being built.
type form struct{ el *stream.Element }

func newForm(typ, formType string) *form {
	f := &form{el: stream.New(nsData, "x", "type", typ)}
	hidden := stream.New(nsData, "field", "var", "FORM_TYPE", "type", "hidden")
	hidden.Add(stream.New(nsData, "value").AddText(formType))
	f.el.Add(hidden)
	return f
}

func (f *form) field(v, typ string, values ...string) *stream.Element {
	el := stream.New(nsData, "field", "var", v)
	el.Set("type", typ)
	for _, x := range values {
		el.Add(stream.New(nsData, "value").AddText(x))
	}
	f.el.Add(el)
	return el
}

func boolStr(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// formValues reads a submitted form: var → values. ok is false if it is
// not a form of formType.
func formValues(x *stream.Element, formType string) (map[string][]string, bool) {
	vals := map[string][]string{}
	for _, f := range x.Children() {
		if f.Space != nsData || f.Local != "field" {
			continue
		}
		var vs []string
		for _, v := range f.Children() {
			if v.Space == nsData && v.Local == "value" {
				vs = append(vs, v.Text())
			}
		}
		vals[f.Get("var")] = vs
	}
	if ft := vals["FORM_TYPE"]; len(ft) > 0 && ft[0] != formType {
		return nil, false
	}
	return vals, true
}

func parseBool(s string) (bool, bool) {
	switch strings.TrimSpace(s) {
	case "1", "true":
		return true, true
	case "0", "false":
		return false, true
	}
	return false, false
}

// configForm is the owner's form with r's configuration.
func (r *room) configForm() *stream.Element {
	c := r.st.Config
	f := newForm("form", nsConfForm)
	f.field("muc#roomconfig_roomname", "text-single", c.Name)
	f.field("muc#roomconfig_roomdesc", "text-single", c.Description)
	f.field("muc#roomconfig_persistentroom", "boolean", boolStr(c.Persistent))
	f.field("muc#roomconfig_publicroom", "boolean", boolStr(c.Public))
	f.field("muc#roomconfig_membersonly", "boolean", boolStr(c.MembersOnly))
	f.field("muc#roomconfig_moderatedroom", "boolean", boolStr(c.Moderated))
	f.field("muc#roomconfig_passwordprotectedroom", "boolean", boolStr(c.Password != ""))
	f.field("muc#roomconfig_roomsecret", "text-private", c.Password)
	f.field("muc#roomconfig_allowinvites", "boolean", boolStr(c.AllowInvites))
	f.field("muc#roomconfig_changesubject", "boolean", boolStr(c.ChangeSubject))
	w := f.field("muc#roomconfig_whois", "list-single", c.WhoIs)
	for _, o := range []string{"moderators", "anyone"} {
		opt := stream.New(nsData, "option", "label", o)
		opt.Add(stream.New(nsData, "value").AddText(o))
		w.Add(opt)
	}
	pm := c.AllowPM
	if pm == "" {
		pm = "anyone"
	}
	p := f.field("muc#roomconfig_allowpm", "list-single", pm)
	for _, o := range allowPMValues {
		opt := stream.New(nsData, "option", "label", o)
		opt.Add(stream.New(nsData, "value").AddText(o))
		p.Add(opt)
	}
	f.field("muc#maxhistoryfetch", "text-single", strconv.Itoa(c.MaxHistory))
	f.field("muc#roomconfig_historylength", "text-single", strconv.Itoa(c.MaxHistory))
	f.field(fieldRetention, "text-single", strconv.Itoa(c.RetentionDays)).
		Set("label", "Keep messages for this many days (0: the server's setting)")
	return f.el
}

// applyConfig checks a submitted form against c and returns the new
// configuration; an unknown value is bad-request and nothing changes.
func applyConfig(c Config, vals map[string][]string) (Config, error) {
	one := func(k string) (string, bool) {
		v, ok := vals[k]
		if !ok {
			return "", false
		}
		if len(v) == 0 {
			return "", true
		}
		return v[0], true
	}
	bools := map[string]*bool{
		"muc#roomconfig_persistentroom": &c.Persistent,
		"muc#roomconfig_publicroom":     &c.Public,
		"muc#roomconfig_membersonly":    &c.MembersOnly,
		"muc#roomconfig_moderatedroom":  &c.Moderated,
		"muc#roomconfig_allowinvites":   &c.AllowInvites,
		"muc#roomconfig_changesubject":  &c.ChangeSubject,
	}
	for k, p := range bools {
		if v, ok := one(k); ok {
			b, good := parseBool(v)
			if !good {
				return c, withText(server.ErrBadRequest, k+": not a boolean")
			}
			*p = b
		}
	}
	if v, ok := one("muc#roomconfig_roomname"); ok {
		c.Name = limit(v, 200)
	}
	if v, ok := one("muc#roomconfig_roomdesc"); ok {
		c.Description = limit(v, 1000)
	}
	pwOn := c.Password != ""
	if v, ok := one("muc#roomconfig_passwordprotectedroom"); ok {
		b, good := parseBool(v)
		if !good {
			return c, withText(server.ErrBadRequest, "passwordprotectedroom: not a boolean")
		}
		pwOn = b
	}
	if v, ok := one("muc#roomconfig_roomsecret"); ok {
		c.Password = limit(v, 200)
	}
	if !pwOn {
		c.Password = ""
	} else if c.Password == "" {
		return c, withText(server.ErrNotAcceptable, "a password-protected room needs a password")
	}
	if v, ok := one("muc#roomconfig_whois"); ok {
		if v != "moderators" && v != "anyone" {
			return c, withText(server.ErrBadRequest, "whois: moderators or anyone")
		}
		c.WhoIs = v
	}
	if v, ok := one("muc#roomconfig_allowpm"); ok {
		if !slices.Contains(allowPMValues, v) {
			return c, withText(server.ErrBadRequest, "allowpm: anyone, participants, moderators or none")
		}
		c.AllowPM = v
	}
	if v, ok := one(fieldRetention); ok && v != "" {
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil || n < 0 || n > MaxRetentionDays {
			return c, withText(server.ErrBadRequest, fieldRetention+": a number of days from 0 to 3650")
		}
		c.RetentionDays = n
	}
	for _, k := range []string{"muc#maxhistoryfetch", "muc#roomconfig_historylength"} {
		if v, ok := one(k); ok && v != "" {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil || n < 0 {
				return c, withText(server.ErrBadRequest, k+": not a number")
			}
			c.MaxHistory = min(n, MaxHistory)
		}
	}
	return c, nil
}

func limit(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
