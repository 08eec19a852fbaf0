// Package version is the firmware version every Hearth program reports. The
// image build stamps it with -ldflags "-X github.com/hearthchat/hearth/appliance/version.Version=…".
package version

// Version is the release this binary belongs to; "dev" for local builds.
var Version = "dev"
