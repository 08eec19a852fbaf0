// Package version is the firmware version every Hearth program reports. The
// image build stamps it with -ldflags "-X github.com/hearthchat/hearth/appliance/version.Version=…".
package version

// Version is the release this binary belongs to; "dev" for local builds.
var Version = "dev"

// BuildTime is when the image was built, in Unix seconds; the image build
// stamps it beside Version (appliance/clock raises a clock without a
// battery to at least this). Empty for local builds.
var BuildTime = ""
