package config

// Net is netconf's section: how the box makes itself reachable.
type Net struct {
	// UPnP allows netconf to ask the router for port mappings. Off until the
	// admin agrees: opening ports on somebody's router is their decision.
	UPnP bool `json:"upnp"`
	// Tor publishes an onion service for the box.
	Tor bool `json:"tor"`
}

// DefaultNet is the network section of a fresh box.
func DefaultNet() Net { return Net{} }
