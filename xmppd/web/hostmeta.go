package web

import (
	"encoding/json"
	"encoding/xml"
	"net/http"
	"net/url"
	"strings"
)

// Link is one XEP-0156 connection method ("urn:xmpp:alt-connections:
// websocket" and its URL). An Href that is a path ("/xmpp-websocket") is
// made absolute for each request: the name the client asked for (one the
// box answers to, or the handler refused it with 421 already) and the
// request's scheme, ws:// or wss:// for a WebSocket. A LAN client at
// http://hearth.local gets ws://hearth.local/xmpp-websocket; a fixed
// wss://<domain>/… pointed it at a name and a certificate it may not reach.
type Link struct {
	Rel  string `json:"rel" xml:"rel,attr"`
	Href string `json:"href" xml:"href,attr"`
}

// AddLink lists a connection method in host-meta. The WebSocket endpoint
// registers itself here when it exists.
func (s *Server) AddLink(rel, href string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.links = append(s.links, Link{rel, href})
}

// hostMeta serves /.well-known/host-meta (XRD, RFC 6415) and its JSON
// form. Browsers' web clients fetch it from other origins, so it allows
// any origin to read it (it holds nothing private).
func (s *Server) hostMeta(w http.ResponseWriter, r *http.Request, asJSON bool) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "GET only", http.StatusMethodNotAllowed)
		return
	}
	s.mu.Lock()
	links := append([]Link{}, s.links...)
	s.mu.Unlock()
	for i, l := range links {
		links[i].Href = s.absLink(r, l)
	}
	w.Header().Set("Access-Control-Allow-Origin", "*")
	if asJSON {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(struct {
			Links []Link `json:"links"`
		}{links})
		return
	}
	w.Header().Set("Content-Type", "application/xrd+xml; charset=utf-8")
	w.Write([]byte(xml.Header))
	xml.NewEncoder(w).Encode(struct {
		XMLName xml.Name `xml:"http://docs.oasis-open.org/ns/xri/xrd-1.0 XRD"`
		Links   []Link   `xml:"Link"`
	}{Links: links})
}

// absLink resolves a path link against the request (see Link).
func (s *Server) absLink(r *http.Request, l Link) string {
	if !strings.HasPrefix(l.Href, "/") || strings.HasPrefix(l.Href, "//") {
		return l.Href
	}
	host := r.Host
	if _, ok := s.hosts.allowed(host); !ok {
		host = s.o.Domain()
	}
	scheme := "http"
	if strings.HasSuffix(l.Rel, ":websocket") {
		scheme = "ws"
	}
	if r.TLS != nil {
		scheme += "s"
	}
	return (&url.URL{Scheme: scheme, Host: host, Path: l.Href}).String()
}
