package acme

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/mholt/acmez/v3/acme"

	"github.com/hearthchat/hearth/netconf/status"
)

const title = "Certificate (the padlock)"

// soon is when a certificate that is about to run out becomes a warning.
const soon = 7 * 24 * time.Hour

func (m *Manager) report(c status.Check) {
	if m.o.Reporter == nil {
		return
	}
	c.ID, c.Title = CheckID, title
	if c.Detail == nil {
		c.Detail = map[string]string{}
	}
	c.Detail["names"] = strings.Join(m.names, " ")
	c.Detail["directory"] = m.o.Directory
	m.o.Reporter.Set(c)
}

func certDetail(leaf *x509.Certificate) map[string]string {
	return map[string]string{
		"not_after": leaf.NotAfter.UTC().Format(time.RFC3339),
		"issuer":    leaf.Issuer.String(),
		"serial":    leaf.SerialNumber.Text(16),
	}
}

func day(t time.Time) string { return t.Local().Format("2 January 2006") }

func (m *Manager) reportValid(leaf *x509.Certificate) {
	c := status.Check{Level: status.OK, Detail: certDetail(leaf),
		Message: fmt.Sprintf("Certificate for %s valid until %s.", m.o.Domain, day(leaf.NotAfter))}
	if leaf.NotAfter.Sub(m.now()) < soon {
		c.Level = status.Warn
		c.Message = fmt.Sprintf("The certificate for %s runs out on %s and has not been renewed yet.", m.o.Domain, day(leaf.NotAfter))
		c.Action = "Nothing to do yet: the box renews it by itself. If this stays for days, check that the box is connected to the internet."
	}
	m.report(c)
}

func (m *Manager) reportWorking(cur *x509.Certificate) {
	if cur != nil {
		c := status.Check{Level: status.OK, Detail: certDetail(cur),
			Message: fmt.Sprintf("Certificate for %s valid until %s; renewing it now.", m.o.Domain, day(cur.NotAfter))}
		if cur.NotAfter.Sub(m.now()) < soon {
			c.Level = status.Pending
		}
		m.report(c)
		return
	}
	m.report(status.Check{Level: status.Pending,
		Message: fmt.Sprintf("Asking the certificate authority for a certificate for %s…", m.o.Domain)})
}

func (m *Manager) reportFailure(cur *x509.Certificate, kind string, err error, failures int, next time.Time) {
	why, action := m.explain(classify(err), kind)
	d := map[string]string{
		"error":     err.Error(),
		"failures":  strconv.Itoa(failures),
		"retry_at":  next.UTC().Format(time.RFC3339),
		"retry_in":  next.Sub(m.now()).Round(time.Second).String(),
		"challenge": kind,
	}
	if cur != nil {
		for k, v := range certDetail(cur) {
			d[k] = v
		}
		level := status.Warn
		if cur.NotAfter.Sub(m.now()) < 2*24*time.Hour {
			level = status.Error
		}
		m.report(status.Check{Level: level, Detail: d,
			Message: fmt.Sprintf("Certificate for %s valid until %s, but renewing it failed. %s The box tries again at %s.",
				m.o.Domain, day(cur.NotAfter), why, next.Local().Format("15:04")),
			Action: action})
		return
	}
	m.report(status.Check{Level: status.Error, Detail: d,
		Message: fmt.Sprintf("No certificate for %s yet, so apps and browsers warn that the connection is not trusted. %s The box tries again at %s.",
			m.o.Domain, why, next.Local().Format("15:04")),
		Action: action})
}

type reason int

const (
	other reason = iota
	unreachable
	rateLimited
	notReached // the CA could not reach us or see our DNS record
	refused    // the CA will not issue for this name
	caTrouble
)

// classify sorts an error into what a person can act on.
func classify(err error) reason {
	var p acme.Problem
	if errors.As(err, &p) {
		return problemReason(p.Type, p.Status)
	}
	s := err.Error()
	// acmez wraps challenge failures in text; look for the problem type.
	for _, t := range []string{acme.ProblemTypeRateLimited, acme.ProblemTypeUnauthorized, acme.ProblemTypeConnection,
		acme.ProblemTypeDNS, acme.ProblemTypeTLS, acme.ProblemTypeIncorrectResponse, acme.ProblemTypeCAA,
		acme.ProblemTypeRejectedIdentifier, acme.ProblemTypeServerInternal} {
		if strings.Contains(s, t) {
			return problemReason(t, 0)
		}
	}
	var ne net.Error
	var ue *url.Error
	var oe *net.OpError
	if errors.As(err, &oe) || errors.As(err, &ue) || (errors.As(err, &ne) && ne.Timeout()) ||
		errors.Is(err, context.DeadlineExceeded) {
		return unreachable
	}
	if strings.Contains(s, "HTTP 5") || strings.Contains(s, "status code 5") {
		return caTrouble
	}
	return other
}

func problemReason(typ string, httpStatus int) reason {
	switch typ {
	case acme.ProblemTypeRateLimited:
		return rateLimited
	case acme.ProblemTypeUnauthorized, acme.ProblemTypeConnection, acme.ProblemTypeDNS,
		acme.ProblemTypeTLS, acme.ProblemTypeIncorrectResponse:
		return notReached
	case acme.ProblemTypeCAA, acme.ProblemTypeRejectedIdentifier, acme.ProblemTypeUnsupportedIdentifier:
		return refused
	case acme.ProblemTypeServerInternal:
		return caTrouble
	}
	if httpStatus == 429 {
		return rateLimited
	}
	if httpStatus >= 500 {
		return caTrouble
	}
	return other
}

func (m *Manager) explain(r reason, kind string) (why, action string) {
	switch r {
	case unreachable:
		return "The box could not reach the certificate authority.",
			"Check that the box is connected to the internet. It tries again by itself."
	case rateLimited:
		return "The certificate authority asks us to wait (too many requests).",
			"Nothing to do: the box waits and tries again by itself. Avoid resetting the box in the meantime."
	case notReached:
		if kind == string(DNS01) {
			return "The certificate authority did not see the check record in your domain's DNS.",
				"Check the DNS host settings (provider, key name and key) in the setup pages. The box tries again by itself."
		}
		return fmt.Sprintf("The certificate authority could not reach this box as %s.", m.o.Domain),
			fmt.Sprintf("Check that the address record of %s points to your home address, and that your router forwards ports 80 and 443 to this box (turn on UPnP in the router, or forward them by hand). Behind a provider's shared address (CGNAT) this cannot work: set up a DNS host in the setup pages instead.", m.o.Domain)
	case refused:
		return fmt.Sprintf("The certificate authority will not issue a certificate for %s.", m.o.Domain),
			fmt.Sprintf("Check that the domain name %s in the setup pages is right and is yours. If your domain has CAA records, they must allow this certificate authority.", m.o.Domain)
	case caTrouble:
		return "The certificate authority reported a problem on its side.",
			"Nothing to do: the box tries again by itself. If this stays for days, check the certificate authority setting in the setup pages."
	}
	return "The certificate authority refused the request.",
		"The box tries again by itself. If this stays, check the domain name and e-mail address in the setup pages."
}
