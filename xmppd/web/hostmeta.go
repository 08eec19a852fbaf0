package web

import (
	"encoding/json"
	"encoding/xml"
	"net/http"
)

// Link is one XEP-0156 connection method ("urn:xmpp:alt-connections:
// websocket" and its wss:// URL).
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
