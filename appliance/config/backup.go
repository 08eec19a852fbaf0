package config

// Backup is the nightly whole-box backup's section (appliance/backup):
// where to write it and how many to keep. The passphrase is not here but
// in its own file in the state directory (appliance/backup
// PassphraseFile): this file is shown and edited by people (README: "edit
// var/config.json") and travels inside every backup.
type Backup struct {
	// Dir is a folder on a mounted USB stick; "" turns the nightly backup
	// off.
	Dir string `json:"dir,omitempty"`
	// Keep is how many backups stay in Dir (the oldest are deleted after a
	// new one is complete); 0 means DefaultBackupKeep.
	Keep int `json:"keep,omitempty"`
	// Hour is the local hour of day the backup runs (0-23; default 3, in
	// the night when nobody chats and before the update window's end).
	Hour *int `json:"hour,omitempty"`
}

// DefaultBackupKeep keeps a week of nightly backups.
const DefaultBackupKeep = 7

// KeepN is Keep with its default.
func (b Backup) KeepN() int {
	if b.Keep <= 0 {
		return DefaultBackupKeep
	}
	return min(b.Keep, 100)
}

// HourOfDay is Hour with its default.
func (b Backup) HourOfDay() int {
	if b.Hour == nil || *b.Hour < 0 || *b.Hour > 23 {
		return 3
	}
	return *b.Hour
}
