package server

import (
	"strings"
	"testing"

	"mellium.im/xmpp/jid"

	"github.com/hearthchat/hearth/xmppd/stream"
)

// TestServiceRouting: before services.go an iq to upload.<domain> went to
// the s2s hook and came back remote-server-not-found. Now the service
// answers its own disco#info and items, its registered iqs (with its own
// address as 'from'), unknown iqs with service-unavailable, and messages
// nobody takes are bounced; the domain lists it in DiscoItems.
func TestServiceRouting(t *testing.T) {
	srv := newServer(t)
	remote := 0
	srv.Hook(StanzaRemote, 0, func(*Stanza) bool { remote++; return true })
	svc := srv.AddService("Upload.example.test", "Uploads")
	if again := srv.AddService("upload.example.test", "Uploads"); again != svc {
		t.Fatal("adding a service twice made a second one")
	}
	svc.AddIdentity(Identity{Category: "store", Type: "file", Name: "Uploads"})
	svc.AddFeature("urn:example:svc")
	svc.AddDiscoExtension(func(jid.JID) []*stream.Element {
		return []*stream.Element{stream.New("jabber:x:data", "x", "type", "result")}
	})
	var sawFrom, sawTo string
	svc.HandleIQ("get", "urn:example:svc", "q", func(st *Stanza) (*stream.Element, error) {
		sawFrom, sawTo = st.From.String(), st.To.String()
		return stream.New("urn:example:svc", "answer"), nil
	})
	var other []string
	svc.Handle(func(st *Stanza) { other = append(other, st.El.Local+":"+st.Type()) })

	s, out := pipeSession(t, srv, "alice@example.test/a")
	iq := func(id, to, ns, local string) *stream.Element {
		return stream.New(stream.NSClient, "iq", "type", "get", "id", id, "to", to).Add(stream.New(ns, local))
	}
	srv.FromClient(s, iq("info", "upload.example.test", nsDiscoInfo, "query"))
	srv.FromClient(s, iq("items", "upload.example.test", nsDiscoItems, "query"))
	srv.FromClient(s, iq("mine", "UPLOAD.example.test", "urn:example:svc", "q"))
	srv.FromClient(s, iq("unknown", "upload.example.test", "urn:nope", "q"))
	srv.FromClient(s, stream.New(stream.NSClient, "message", "type", "chat", "id", "m1", "to", "x@upload.example.test"))
	srv.FromClient(s, stream.New(stream.NSClient, "iq", "type", "result", "id", "r1", "to", "upload.example.test"))
	srv.FromClient(s, iq("far", "upload.elsewhere.test", "urn:example:svc", "q"))
	s.CloseWithError("", "")
	got := <-out
	for _, want := range []string{
		"<identity category='store' type='file' name='Uploads'",
		"var='urn:example:svc'", "var='" + nsDiscoInfo + "'", "jabber:x:data",
		"type='result' id='items' to='alice@example.test/a' from='upload.example.test'><query xmlns='" + nsDiscoItems + "'",
		"type='result' id='mine' to='alice@example.test/a' from='upload.example.test'><answer",
		"id='unknown' type='error'", "service-unavailable",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("replies lack %q:\n%s", want, got)
		}
	}
	if sawFrom != "alice@example.test/a" || sawTo != "upload.example.test" {
		t.Errorf("handler saw from %q to %q", sawFrom, sawTo)
	}
	if strings.Join(other, ",") != "message:chat,iq:result" {
		t.Errorf("Handle got %v", other)
	}
	if remote != 1 {
		t.Errorf("s2s hook ran %d times, want 1 (only for the foreign domain)", remote)
	}
	if items := srv.DiscoItems(); len(items) != 1 || items[0] != (DiscoItem{JID: "upload.example.test", Name: "Uploads"}) {
		t.Errorf("DiscoItems = %v", items)
	}
	if srv.IsLocal(jid.MustParse("upload.example.test")) || !srv.IsService(jid.MustParse("r@upload.example.test/x")) {
		t.Error("IsLocal/IsService wrong for the service")
	}
}

// TestServiceWithoutHandle: a message to a service that takes none is
// bounced, not lost.
func TestServiceWithoutHandle(t *testing.T) {
	srv := newServer(t)
	srv.AddService("proxy.example.test", "")
	if len(srv.DiscoItems()) != 0 {
		t.Error("a service without a name was listed")
	}
	s, out := pipeSession(t, srv, "alice@example.test/a")
	srv.FromClient(s, stream.New(stream.NSClient, "message", "type", "chat", "id", "m1", "to", "proxy.example.test"))
	s.CloseWithError("", "")
	if got := <-out; !strings.Contains(got, "id='m1'") || !strings.Contains(got, "service-unavailable") {
		t.Errorf("message to the service not bounced:\n%s", got)
	}
}
