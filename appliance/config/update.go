package config

// Update is the update agent's section.
type Update struct {
	// Auto lets the agent install updates without asking.
	Auto bool `json:"auto"`
}

// DefaultUpdate is the update section of a fresh box.
func DefaultUpdate() Update { return Update{Auto: true} }
