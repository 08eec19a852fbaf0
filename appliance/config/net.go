package config

// Net is netconf's section: how the box makes itself reachable.
type Net struct {
	// Hostname is the mDNS name on the home network, without ".local".
	// A second box on the same network answers as "<Hostname>-2".
	Hostname string `json:"hostname"`
	// UPnP allows netconf to ask the router for port mappings. Off until the
	// admin agrees: opening ports on somebody's router is their decision.
	UPnP bool `json:"upnp"`
	// Tor publishes an onion service for the box.
	Tor bool `json:"tor"`
	// ACME asks a certificate authority for a certificate for Config.Domain
	// (and its groups./upload. names). Off for a box that only has a .local
	// name or an onion address.
	ACME ACME `json:"acme"`
	// DNS is where the club's domain is hosted, when netconf may edit its
	// records (dynamic DNS, DNS-01 challenges). Empty Provider: the admin
	// manages the records by hand and netconf only checks them.
	DNS DNS `json:"dns"`
}

// ACME is the certificate authority netconf talks to.
type ACME struct {
	Enabled bool `json:"enabled"`
	// Email is given to the CA for expiry warnings; may be empty.
	Email string `json:"email,omitempty"`
	// Directory is the CA's ACME directory URL; empty means Let's Encrypt.
	Directory string `json:"directory,omitempty"`
}

// DNS is a DNS host netconf may update through a libdns provider.
type DNS struct {
	// Provider names the libdns provider, e.g. "rfc2136".
	Provider string `json:"provider,omitempty"`
	// Settings are the provider's own settings (server, key name, secret…).
	// The file is 0600; these are secrets.
	Settings map[string]string `json:"settings,omitempty"`
}

// DefaultNet is the network section of a fresh box.
func DefaultNet() Net { return Net{Hostname: "hearth"} }
