package upnp

// Unit tests for the router's answers as hostile input, against small
// fake routers on loopback (httptest). The same paths run against the real
// miniupnpd in upnp_e2e_test.go.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/huin/goupnp"
	"github.com/huin/goupnp/soap"

	"github.com/hearthchat/hearth/netconf/status"
)

var loopback = netip.MustParseAddr("127.0.0.1")

// desc is a description like miniupnpd's, with relative control URLs.
func desc(urlBase, controlURL string) string {
	base := ""
	if urlBase != "" {
		base = "<URLBase>" + urlBase + "</URLBase>"
	}
	return `<?xml version="1.0"?>
<root xmlns="urn:schemas-upnp-org:device-1-0"><specVersion><major>1</major><minor>1</minor></specVersion>` + base + `
<device><deviceType>urn:schemas-upnp-org:device:InternetGatewayDevice:2</deviceType><friendlyName>Test router</friendlyName>
<deviceList><device><deviceType>urn:schemas-upnp-org:device:WANDevice:2</deviceType>
<deviceList><device><deviceType>urn:schemas-upnp-org:device:WANConnectionDevice:2</deviceType>
<serviceList><service><serviceType>urn:schemas-upnp-org:service:WANIPConnection:2</serviceType>
<serviceId>urn:upnp-org:serviceId:WANIPConn1</serviceId><SCPDURL>/WANIPCn.xml</SCPDURL>
<controlURL>` + controlURL + `</controlURL><eventSubURL>/evt/IPConn</eventSubURL></service></serviceList>
</device></deviceList></device></deviceList></device></root>`
}

func fakeRouter(t *testing.T, h http.Handler) (*httptest.Server, answer) {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	loc, _ := url.Parse(srv.URL + "/rootDesc.xml")
	return srv, answer{from: loopback, local: loopback, location: loc}
}

func serveDesc(body string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, body)
	})
}

func TestDescriptionAccepted(t *testing.T) {
	_, a := fakeRouter(t, serveDesc(desc("", "/ctl/IPConn")))
	r, err := openRouter(context.Background(), a, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if r.service != serviceTypes[0] || r.name != "Test router" {
		t.Errorf("service %q name %q", r.service, r.name)
	}
}

func TestDescriptionHostile(t *testing.T) {
	big := desc("", "/ctl/IPConn") + "<!--" + strings.Repeat("x", MaxDocument) + "-->"
	tests := []struct {
		name    string
		handler http.Handler
		want    string // in the error
	}{
		{"too large with length", serveDesc(big), "larger than 64 KiB"},
		{"too large chunked", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			for i := 0; i < 80; i++ {
				io.WriteString(w, strings.Repeat(" ", 1024))
				w.(http.Flusher).Flush()
			}
			io.WriteString(w, desc("", "/ctl/IPConn"))
		}), "larger than 64 KiB"},
		{"DTD with entities", serveDesc(`<?xml version="1.0"?><!DOCTYPE root [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;">]>` +
			strings.TrimPrefix(desc("", "/ctl/IPConn"), `<?xml version="1.0"?>`)), "DTD"},
		{"external entity", serveDesc(`<?xml version="1.0"?><!DOCTYPE root SYSTEM "http://192.0.2.1/x.dtd">` +
			strings.TrimPrefix(desc("", "/ctl/IPConn"), `<?xml version="1.0"?>`)), "DTD"},
		{"URLBase elsewhere", serveDesc(desc("http://192.0.2.1:80/", "/ctl/IPConn")), "not on the answering device"},
		{"control URL elsewhere", serveDesc(desc("", "http://192.0.2.1:5000/ctl/IPConn")), "not on the answering device"},
		{"control URL by name", serveDesc(desc("", "http://router.example:5000/ctl/IPConn")), "not on the answering device"},
		{"redirect", http.RedirectHandler("http://192.0.2.1/rootDesc.xml", http.StatusFound), "redirect"},
		{"no port forwarding service", serveDesc(strings.ReplaceAll(desc("", "/ctl/IPConn"), "WANIPConnection:2", "Layer3Forwarding:1")), "no port forwarding service"},
		{"not XML", serveDesc("hello"), "description"},
		{"HTTP error", http.NotFoundHandler(), "HTTP 404"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, a := fakeRouter(t, tc.handler)
			_, err := openRouter(context.Background(), a, 2*time.Second)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.want)
			}
		})
	}
}

func TestDescriptionSlowRouter(t *testing.T) {
	release := make(chan struct{})
	_, a := fakeRouter(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer close(release)
	start := time.Now()
	_, err := openRouter(context.Background(), a, 300*time.Millisecond)
	if err == nil || time.Since(start) > 2*time.Second {
		t.Fatalf("err %v after %v", err, time.Since(start))
	}
}

// A LOCATION naming another host is never fetched, neither from the SSDP
// answer nor if it somehow reached the fetcher.
func TestForeignLocationNeverFetched(t *testing.T) {
	var hits atomic.Int32
	srv, _ := fakeRouter(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		io.WriteString(w, desc("", "/ctl/IPConn"))
	}))
	// The answer came from 127.0.0.2 but points at 127.0.0.1.
	other := netip.MustParseAddr("127.0.0.2")
	pkt := "HTTP/1.1 200 OK\r\nST: " + serviceTypes[0] + "\r\nLOCATION: " + srv.URL + "/rootDesc.xml\r\n\r\n"
	if _, err := parseAnswer([]byte(pkt), other, serviceTypes); err == nil || !strings.Contains(err.Error(), "not on the answering device") {
		t.Fatalf("parseAnswer: %v", err)
	}
	loc, _ := url.Parse(srv.URL + "/rootDesc.xml")
	if _, err := openRouter(context.Background(), answer{from: other, location: loc}, time.Second); err == nil {
		t.Fatal("fetched from a host other than the one that answered")
	}
	if hits.Load() != 0 {
		t.Fatalf("the foreign location was fetched %d times", hits.Load())
	}
}

func TestParseAnswer(t *testing.T) {
	from := netip.MustParseAddr("192.168.1.1")
	st := serviceTypes[0]
	tests := []struct {
		name, pkt string
		ok        bool
	}{
		{"good", "HTTP/1.1 200 OK\r\nST: " + st + "\r\nLOCATION: http://192.168.1.1:5000/rootDesc.xml\r\n\r\n", true},
		{"other host", "HTTP/1.1 200 OK\r\nST: " + st + "\r\nLOCATION: http://192.168.1.2:5000/rootDesc.xml\r\n\r\n", false},
		{"host name", "HTTP/1.1 200 OK\r\nST: " + st + "\r\nLOCATION: http://router.lan:5000/rootDesc.xml\r\n\r\n", false},
		{"https", "HTTP/1.1 200 OK\r\nST: " + st + "\r\nLOCATION: https://192.168.1.1:5000/rootDesc.xml\r\n\r\n", false},
		{"file", "HTTP/1.1 200 OK\r\nST: " + st + "\r\nLOCATION: file:///etc/passwd\r\n\r\n", false},
		{"credentials", "HTTP/1.1 200 OK\r\nST: " + st + "\r\nLOCATION: http://a:b@192.168.1.1:5000/\r\n\r\n", false},
		{"not searched for", "HTTP/1.1 200 OK\r\nST: urn:schemas-upnp-org:device:MediaServer:1\r\nLOCATION: http://192.168.1.1:5000/d.xml\r\n\r\n", false},
		{"error status", "HTTP/1.1 500 Oops\r\nST: " + st + "\r\nLOCATION: http://192.168.1.1:5000/d.xml\r\n\r\n", false},
		{"garbage", "\x00\x01\x02", false},
	}
	for _, tc := range tests {
		a, err := parseAnswer([]byte(tc.pkt), from, serviceTypes)
		if (err == nil) != tc.ok {
			t.Errorf("%s: err = %v", tc.name, err)
		}
		if tc.ok && a.location.Port() != "5000" {
			t.Errorf("%s: location %v", tc.name, a.location)
		}
	}
}

func TestClassify(t *testing.T) {
	tests := []struct {
		in   string
		kind addrKind
	}{
		{"11.250.42.1", kindPublic},
		{"8.8.8.8", kindPublic},
		{"100.64.0.1", kindCGNAT},
		{"100.127.255.254", kindCGNAT},
		{"100.128.0.1", kindPublic},
		{"192.168.1.20", kindPrivate},
		{"10.1.2.3", kindPrivate},
		{"172.20.0.1", kindPrivate},
		{"169.254.3.3", kindPrivate},
		{"203.0.113.5", kindPrivate},
		{"0.0.0.0", kindNone},
		{"", kindNone},
		{"not an address", kindNone},
		{"2001:db8::1", kindPublic},
		{"fd00::1", kindPrivate},
	}
	for _, tc := range tests {
		if _, k := classify(tc.in); k != tc.kind {
			t.Errorf("classify(%q) = %s, want %s", tc.in, k, tc.kind)
		}
	}
}

// soapRouter is a fake IGD control endpoint: fn answers each action.
func soapRouter(t *testing.T, fn func(action, body string) (int, string)) *router {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle("/rootDesc.xml", serveDesc(desc("", "/ctl/IPConn")))
	mux.HandleFunc("/ctl/IPConn", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		action := r.Header.Get("SOAPAction")
		action = strings.Trim(action[strings.LastIndexByte(action, '#')+1:], `"`)
		code, out := fn(action, string(b))
		w.Header().Set("Content-Type", `text/xml; charset="utf-8"`)
		w.WriteHeader(code)
		io.WriteString(w, out)
	})
	_, a := fakeRouter(t, mux)
	r, err := openRouter(context.Background(), a, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func soapOK(action, inner string) string {
	return `<?xml version="1.0"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><u:` + action +
		`Response xmlns:u="urn:schemas-upnp-org:service:WANIPConnection:2">` + inner + `</u:` + action + `Response></s:Body></s:Envelope>`
}

func soapFault(code int, text string) string {
	return fmt.Sprintf(`<?xml version="1.0"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><s:Fault><faultcode>s:Client</faultcode><faultstring>UPnPError</faultstring><detail><UPnPError xmlns="urn:schemas-upnp-org:control-1-0"><errorCode>%d</errorCode><errorDescription>%s</errorDescription></UPnPError></detail></s:Fault></s:Body></s:Envelope>`, code, text)
}

// A router that only keeps permanent mappings (725) gets lease 0.
func TestPermanentLeaseOnly(t *testing.T) {
	var leases []string
	r := soapRouter(t, func(action, body string) (int, string) {
		if action != "AddPortMapping" {
			return 500, soapFault(401, "Invalid Action")
		}
		lease := body[strings.Index(body, "<NewLeaseDuration>")+len("<NewLeaseDuration>"):]
		lease = lease[:strings.IndexByte(lease, '<')]
		leases = append(leases, lease)
		if lease != "0" {
			return 500, soapFault(725, "OnlyPermanentLeasesSupported")
		}
		return 200, soapOK(action, "")
	})
	var b status.Board
	c := New(Options{Reporter: &b, Lease: time.Hour})
	lease := uint32(3600)
	p := Port{"tcp", 5222, "Hearth chat"}
	err := c.mapOne(context.Background(), r, loopback, p, &lease, extState{kind: kindPublic}, map[string]Port{})
	if err != nil || lease != 0 || strings.Join(leases, ",") != "3600,0" {
		t.Fatalf("err %v lease %d requests %v", err, lease, leases)
	}
	if ck, _ := b.Report().Get(p.CheckID()); ck.Level != status.OK || ck.Detail["lease"] != "0" {
		t.Errorf("check %+v", ck)
	}
}

// 501 and an empty address: a clear Error, never success; and an oversized
// SOAP answer is an error, not a router that went away.
func TestExternalAddressAnswers(t *testing.T) {
	tests := []struct {
		name      string
		code      int
		body      string
		level     status.Level
		kind      string
		inMessage string
	}{
		{"public", 200, soapOK("GetExternalIPAddress", "<NewExternalIPAddress>11.250.42.1</NewExternalIPAddress>"), status.OK, "public", "11.250.42.1"},
		{"cgnat", 200, soapOK("GetExternalIPAddress", "<NewExternalIPAddress>100.64.3.4</NewExternalIPAddress>"), status.Error, "cgnat", "carrier-grade NAT"},
		{"double NAT", 200, soapOK("GetExternalIPAddress", "<NewExternalIPAddress>192.168.0.2</NewExternalIPAddress>"), status.Error, "private", "behind another router"},
		{"empty", 200, soapOK("GetExternalIPAddress", "<NewExternalIPAddress></NewExternalIPAddress>"), status.Error, "none", "carrier-grade NAT"},
		{"501", 500, soapFault(501, "ActionFailed"), status.Error, "none", "carrier-grade NAT"},
		{"huge", 200, soapOK("GetExternalIPAddress", "<NewExternalIPAddress>"+strings.Repeat("1", MaxDocument)+"</NewExternalIPAddress>"), status.Error, "none", "carrier-grade NAT"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := soapRouter(t, func(action, body string) (int, string) {
				if action == "GetStatusInfo" {
					return 200, soapOK(action, "<NewConnectionStatus>Connected</NewConnectionStatus><NewLastConnectionError>ERROR_NONE</NewLastConnectionError><NewUptime>5</NewUptime>")
				}
				return tc.code, tc.body
			})
			var b status.Board
			var got [][]netip.Addr
			c := New(Options{Reporter: &b, OnExternal: func(a []netip.Addr) { got = append(got, a) }})
			c.setExternal([]netip.Addr{netip.MustParseAddr("11.1.1.1")}) // a stale address must be withdrawn
			got = nil
			if _, err := c.checkExternal(context.Background(), r); err != nil {
				t.Fatal(err)
			}
			ck, _ := b.Report().Get(CheckExternal)
			if ck.Level != tc.level || ck.Detail["kind"] != tc.kind || !strings.Contains(ck.Message, tc.inMessage) {
				t.Errorf("check %+v", ck)
			}
			if ck.Level != status.OK && ck.Action == "" {
				t.Errorf("no action: %+v", ck)
			}
			wantExt := tc.kind == "public"
			if wantExt != (len(c.External()) == 1) || len(got) != 1 {
				t.Errorf("External() = %v, OnExternal calls %v", c.External(), got)
			}
		})
	}
}

func TestRouterGone(t *testing.T) {
	r := soapRouter(t, func(action, body string) (int, string) { return 200, soapOK(action, "") })
	// Point the client at a port nothing listens on: what a rebooted
	// router whose port moved looks like.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := ln.Addr().String()
	ln.Close()
	u := r.svc.(interface {
		GetServiceClient() *goupnp.ServiceClient
	})
	u.GetServiceClient().SOAPClient.EndpointURL.Host = dead
	err := r.call(context.Background(), func(ctx context.Context) error {
		_, err := r.svc.GetExternalIPAddressCtx(ctx)
		return err
	})
	if !errors.Is(err, errGone) {
		t.Fatalf("err = %v, want errGone", err)
	}
	// A router that answers with an error is not gone.
	r2 := soapRouter(t, func(action, body string) (int, string) { return 500, soapFault(501, "ActionFailed") })
	err = r2.call(context.Background(), func(ctx context.Context) error {
		_, err := r2.svc.GetExternalIPAddressCtx(ctx)
		return err
	})
	if err == nil || errors.Is(err, errGone) || upnpCode(err) != 501 {
		t.Fatalf("err = %v", err)
	}
}

// Every refusal reads as plain words with something to do.
func TestRefusalWords(t *testing.T) {
	p := Port{"tcp", 5222, "Hearth chat"}
	for _, code := range []int{401, 402, 501, 606, 718, 724, 726, 727, 728, 729, 732} {
		for _, kind := range []addrKind{kindPublic, kindCGNAT} {
			f := &soap.SOAPFaultError{FaultCode: "s:Client", FaultString: "UPnPError"}
			f.Detail.UPnPError.Errorcode = code
			ck := mappingRefused(p, loopback, extState{kind: kind}, f, "")
			if ck.Level != status.Error || ck.Message == "" || ck.Action == "" || ck.Detail["code"] != fmt.Sprint(code) {
				t.Errorf("%d: %+v", code, ck)
			}
			for _, jargon := range []string{"SOAP", "UPnPError", fmt.Sprint(code)} {
				if strings.Contains(ck.Message+ck.Action, jargon) {
					t.Errorf("%d: %q in %q / %q", code, jargon, ck.Message, ck.Action)
				}
			}
		}
	}
}

// Some IGDv1 routers answer a renewal of our own mapping with 718; it is
// renewed by deleting and adding, while another device's entry is left
// alone and named.
func TestConflictOwnOrOther(t *testing.T) {
	for _, owner := range []string{"127.0.0.1", "192.168.1.50"} {
		var actions []string
		added := false
		r := soapRouter(t, func(action, body string) (int, string) {
			actions = append(actions, action)
			switch action {
			case "AddPortMapping":
				if !added {
					return 500, soapFault(718, "ConflictInMappingEntry")
				}
				return 200, soapOK(action, "")
			case "GetSpecificPortMappingEntry":
				return 200, soapOK(action, "<NewInternalPort>5222</NewInternalPort><NewInternalClient>"+owner+
					"</NewInternalClient><NewEnabled>1</NewEnabled><NewPortMappingDescription>x</NewPortMappingDescription><NewLeaseDuration>10</NewLeaseDuration>")
			case "DeletePortMapping":
				added = true
				return 200, soapOK(action, "")
			}
			return 500, soapFault(401, "Invalid Action")
		})
		var b status.Board
		c := New(Options{Reporter: &b})
		lease := uint32(3600)
		p := Port{"tcp", 5222, "Hearth chat"}
		mapped := map[string]Port{}
		err := c.mapOne(context.Background(), r, loopback, p, &lease, extState{kind: kindPublic}, mapped)
		ck, _ := b.Report().Get(p.CheckID())
		if owner == "127.0.0.1" {
			if err != nil || ck.Level != status.OK || strings.Join(actions, ",") != "AddPortMapping,GetSpecificPortMappingEntry,DeletePortMapping,AddPortMapping" {
				t.Errorf("own mapping: err %v check %+v actions %v", err, ck, actions)
			}
		} else {
			if err == nil || ck.Level != status.Error || ck.Detail["other_device"] != owner || len(mapped) != 0 || added {
				t.Errorf("other's mapping: err %v check %+v actions %v", err, ck, actions)
			}
		}
	}
}
