package image

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/hearthchat/hearth/appliance/config"
)

// The release channel's feed URL is baked where the updater and the
// health page look for it (config.BakedFeedFile), from the file the build
// writes beside the root of trust (keys/feed-url). Before, a fresh box had
// no feed at all and never updated.
func TestFeedURLBaked(t *testing.T) {
	b, err := os.ReadFile("../config.json")
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		PackageConfig map[string]struct{ ExtraFilePaths map[string]string }
	}
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	if got := c.PackageConfig["github.com/hearthchat/hearth/cmd/updater"].ExtraFilePaths[config.BakedFeedFile]; got != "keys/feed-url" {
		t.Fatalf("config.json bakes %s from %q, want keys/feed-url", config.BakedFeedFile, got)
	}
}

// The builder writes keys/feed-url on every build (empty without a feed,
// so gok always finds the file) and refuses a URL that is not one line.
func TestBuilderWritesFeedURL(t *testing.T) {
	repo := t.TempDir()
	b := &Builder{Repo: repo, Gok: "/bin/false", WorkDir: t.TempDir(), FeedURL: "https://updates.example.org/stable/"}
	b.gok(VM) // gok itself fails here; the file is written before
	got, err := os.ReadFile(filepath.Join(repo, "keys", "feed-url"))
	if err != nil || string(got) != b.FeedURL {
		t.Fatalf("keys/feed-url = %q, %v", got, err)
	}
	b.FeedURL = "https://x/\nevil"
	if err := b.gok(VM); err == nil || err.Error() == "" {
		t.Fatal("a feed URL with a line break was accepted")
	}
}
