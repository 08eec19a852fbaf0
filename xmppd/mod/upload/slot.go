package upload

import (
	"errors"
	"fmt"
	"mime"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	bolt "go.etcd.io/bbolt"

	"github.com/hearthchat/hearth/xmppd/server"
	"github.com/hearthchat/hearth/xmppd/store"
	"github.com/hearthchat/hearth/xmppd/stream"
)

// Errors of a slot request (XEP-0363 §4.2).
var (
	errNotMember = &server.StanzaError{Type: "cancel", Condition: "not-allowed",
		Text: "File upload is for this server's members."}
	errRate = &server.StanzaError{Type: "wait", Condition: "policy-violation",
		Text: "Too many upload requests; wait a minute."}
	errPending = &server.StanzaError{Type: "wait", Condition: "resource-constraint",
		Text: "Too many uploads not finished yet."}
	errCap = &server.StanzaError{Type: "wait", Condition: "resource-constraint",
		Text: "The server's storage for shared files is full."}
	errBudget = &server.StanzaError{Type: "wait", Condition: "resource-constraint",
		Text: "Your storage on this server is full; files you shared expire after a while."}
)

func (u *Uploads) slotIQ(st *server.Stanza) (*stream.Element, error) {
	if !u.srv.LocalSender(st) || st.From.Localpart() == "" {
		return nil, errNotMember
	}
	user := st.From.Localpart()
	req := st.El.FirstChild()
	name := safeName(req.Get("filename"))
	size, err := strconv.ParseInt(req.Get("size"), 10, 64)
	if req.Get("filename") == "" || err != nil || size < 0 {
		return nil, &server.StanzaError{Type: "modify", Condition: "bad-request",
			Text: "A slot request needs a filename and a size in bytes."}
	}
	if size > u.o.MaxFileSize {
		// §4.2: not-acceptable with the limit, so the client can say why.
		return nil, &server.StanzaError{Type: "modify", Condition: "not-acceptable",
			Text: fmt.Sprintf("The file is larger than the %d bytes this server takes.", u.o.MaxFileSize),
			Extra: stream.New(NS, "file-too-large").Add(
				stream.New(NS, "max-file-size").AddText(strconv.FormatInt(u.o.MaxFileSize, 10)))}
	}
	// The type is optional in the request; without one the PUT's
	// Content-Type decides (clients that leave it out still send that).
	typ := ""
	if ct := req.Get("content-type"); ct != "" {
		typ = mediaType(ct)
	}
	now := u.o.Now()
	if !u.allow(user, now) {
		return nil, errRate
	}
	token := newToken()
	key := keyOf(token)
	rec := &record{User: user, Name: name, Type: typ, Size: size, File: newFileName(),
		Created: now.UnixNano(), PutBy: now.Add(u.o.SlotLifetime).UnixNano(), Expires: now.Add(u.o.Expiry).UnixNano()}
	if err := u.reserve(key, rec, now); err != nil {
		return nil, err
	}
	u.timer.arm()
	link := strings.TrimSuffix(u.o.BaseURL(), "/") + Prefix + token + "/" + url.PathEscape(name)
	slot := stream.New(NS, "slot")
	slot.Add(stream.New(NS, "put", "url", link))
	slot.Add(stream.New(NS, "get", "url", link))
	return slot, nil
}

// allow counts a slot request against user's per-minute rate.
func (u *Uploads) allow(user string, now time.Time) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	w := u.rate[user]
	if w == nil || now.Sub(w.start) >= time.Minute || now.Before(w.start) {
		// The map holds at most one entry per member who asked in the
		// last minute: old ones go when it grows.
		if len(u.rate) > 1024 {
			for k, x := range u.rate {
				if now.Sub(x.start) >= time.Minute {
					delete(u.rate, k)
				}
			}
		}
		w = &window{start: now}
		u.rate[user] = w
	}
	w.n++
	return w.n <= u.o.SlotRate
}

// reserve stores the slot's record and charges its size, after the checks
// that need the member's records and the totals. Slots of user that were
// never used and whose time ran out are dropped here (and their bytes
// given back), so a member's quota does not wait for the hourly sweep.
func (u *Uploads) reserve(key string, rec *record, now time.Time) error {
	free, err := u.o.FreeSpace()
	if err != nil {
		u.o.Log.Error("upload: free space", "err", err)
		return errCap
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.closed {
		return server.ErrServiceUnavailable
	}
	// All uploads together: at most a quarter of the space they could
	// have (the free space plus what the files already use), counting
	// slots not yet written as used.
	if u.reserved+rec.Size > (free+u.stored)/CapShare {
		return errCap
	}
	var freed int64
	dayAgo := now.Add(-24 * time.Hour).UnixNano()
	var oldest int64
	err = u.srv.Store.Update(func(tx *bolt.Tx) error {
		freed, oldest = 0, 0
		b, err := tx.CreateBucketIfNotExists(bucket)
		if err != nil {
			return err
		}
		var today int64
		pending := 0
		err = userRecords(b, rec.User, func(k string, r *record) error {
			if !r.Done && r.PutBy <= now.UnixNano() && !u.active[k] {
				freed += r.Size
				return deleteRecord(tx, b, k, r, true)
			}
			if !r.Done {
				pending++
			}
			if r.Created > dayAgo {
				today += r.Size
				if oldest == 0 || r.Created < oldest {
					oldest = r.Created
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		if pending >= u.o.MaxPending {
			return errPending
		}
		if today+rec.Size > u.o.DailyQuota {
			return errDaily
		}
		if err := store.Charge(tx, rec.User, Kind, rec.Size, 1, KindLimit); err != nil {
			return err
		}
		return putRecord(b, key, rec)
	})
	switch {
	case err == nil:
		u.reserved += rec.Size - freed
		return nil
	case errors.Is(err, errDaily):
		// §4.2: resource-constraint with the time the quota frees up.
		retry := time.Unix(0, oldest).Add(24 * time.Hour).UTC()
		return &server.StanzaError{Type: "wait", Condition: "resource-constraint",
			Text:  fmt.Sprintf("You shared %d MiB today, the most for a day; try again later.", u.o.DailyQuota>>20),
			Extra: stream.New(NS, "retry", "stamp", retry.Format(time.RFC3339))}
	case errors.Is(err, errPending):
		return errPending
	case errors.Is(err, store.ErrQuota):
		return errBudget
	default:
		u.o.Log.Error("upload: slot", "user", rec.User, "err", err)
		return server.ErrInternal
	}
}

var errDaily = errors.New("daily quota")

// safeName keeps the client's filename as metadata: its last path
// element only (either slash), printable characters, at most 100 bytes
// (the extension kept), never empty, "." or "..".
func safeName(s string) string {
	if i := strings.LastIndexAny(s, `/\`); i >= 0 {
		s = s[i+1:]
	}
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == utf8.RuneError || !unicode.IsPrint(r) || r == '%' || r == '?' || r == '#' || r == '"' || r == '<' || r == '>':
			b.WriteByte('_')
		case r == ' ':
			b.WriteByte('_')
		default:
			b.WriteRune(r)
		}
	}
	s = b.String()
	if len(s) > 100 {
		ext := path.Ext(s)
		if len(ext) > 16 {
			ext = ""
		}
		cut := 100 - len(ext)
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + ext
	}
	s = strings.TrimLeft(s, ".")
	if s == "" {
		s = "file"
	}
	return s
}

// mediaType is the declared content type without parameters, lower case;
// anything unparsable is application/octet-stream.
func mediaType(s string) string {
	if s == "" {
		return "application/octet-stream"
	}
	t, _, err := mime.ParseMediaType(s)
	if err != nil || !strings.Contains(t, "/") || len(t) > 100 {
		return "application/octet-stream"
	}
	return t
}
