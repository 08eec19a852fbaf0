package config

import "time"

// Archive is the message archive's section (xmppd/mod/mam, XEP-0313):
// how long members' messages are kept on the box. Read when xmppd starts.
type Archive struct {
	// RetentionDays is how many days a message stays in its members'
	// archives; 0 (or a missing section) means DefaultRetentionDays.
	RetentionDays int `json:"retention_days"`
	// FileRetentionDays is how many days files shared in chats (HTTP
	// upload) are kept; 0 means DefaultRetentionDays.
	FileRetentionDays int `json:"file_retention_days,omitempty"`
}

// DefaultRetentionDays keeps a month: enough for a phone that was off on
// holiday to catch up, short enough that an SD card does not fill with
// years of chat.
const DefaultRetentionDays = 30

// MaxRetentionDays bounds the setting (ten years): beyond it a typo, not
// a wish.
const MaxRetentionDays = 3650

// DefaultArchive is the archive section of a fresh box.
func DefaultArchive() Archive { return Archive{RetentionDays: DefaultRetentionDays} }

// Retention is how long messages are kept: the configured days, the
// default when unset or negative, at most MaxRetentionDays.
func (a Archive) Retention() time.Duration {
	d := a.RetentionDays
	if d <= 0 {
		d = DefaultRetentionDays
	}
	return time.Duration(min(d, MaxRetentionDays)) * 24 * time.Hour
}

// FileRetention is how long shared files are kept, bounded as Retention.
func (a Archive) FileRetention() time.Duration {
	return Archive{RetentionDays: a.FileRetentionDays}.Retention()
}
