package config

import (
	"os"
	"path/filepath"
	"testing"
)

// Feed: the config's feed_url wins; else the one baked into the image;
// neither: "" (the health page says the box has no update address).
func TestFeed(t *testing.T) {
	baked := filepath.Join(t.TempDir(), "update-feed-url")
	if got := (Update{}).Feed(baked); got != "" {
		t.Errorf("no file: %q", got)
	}
	os.WriteFile(baked, []byte("https://updates.example.org/stable/\n"), 0o644)
	if got := (Update{}).Feed(baked); got != "https://updates.example.org/stable/" {
		t.Errorf("baked: %q", got)
	}
	if got := (Update{FeedURL: "file:///media/usb"}).Feed(baked); got != "file:///media/usb" {
		t.Errorf("config: %q", got)
	}
	os.WriteFile(baked, nil, 0o644)
	if got := (Update{}).Feed(baked); got != "" {
		t.Errorf("empty file: %q", got)
	}
}
