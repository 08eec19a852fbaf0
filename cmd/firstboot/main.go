// Command firstboot finishes a freshly flashed box on each start until the
// work is done; later starts find nothing to do and end at once.
//
//   - The setup code: while the box is unclaimed, it makes one if the image
//     carries none (a published image; appliance/setupcard), writes it to
//     hearth-setup.txt on the card's boot partition and shows it on the
//     console.
//   - The whole card: it grows /perm, partition and ext4 file system, to
//     the end of the card (appliance/growfs); gokrazy leaves it at the
//     image's 940 MB whatever the card's size.
//
// It exits with status 125, which tells gokrazy not to start it again
// until the next boot; an error is logged and retried on the next boot.
package main

import (
	"fmt"
	"log"
	"os"

	"github.com/hearthchat/hearth/appliance/config"
	"github.com/hearthchat/hearth/appliance/growfs"
	"github.com/hearthchat/hearth/appliance/setupcard"
	"github.com/hearthchat/hearth/appliance/state"
)

// dontRestart is gokrazy's "do not supervise me any more" exit status.
const dontRestart = 125

const perm = "/perm"

func main() {
	log.SetFlags(0)
	log.SetPrefix("firstboot: ")
	if err := setupCode(state.Dir(state.DefaultDir)); err != nil {
		say("%v", err)
	}
	res, err := growfs.Grow(perm, func(step string) { say("growing /perm: %s", step) })
	if err != nil {
		say("%v", err)
	} else {
		say("/perm is %d MB (%s, table grown now: %v; %d -> %d blocks)", res.Bytes>>20, res.Partition, res.TableGrown, res.BlocksBefore, res.BlocksAfter)
	}
	os.Exit(dontRestart)
}

func setupCode(dir state.Dir) error {
	if c, err := config.Load(dir.Config()); err == nil && c.Claimed {
		return nil
	}
	code, created, err := setupcard.LoadOrCreate(dir.SetupCode())
	if err != nil {
		return err
	}
	if created {
		say("made this box's setup code")
	}
	boot, err := growfs.Sibling(perm, 1)
	if err != nil {
		return fmt.Errorf("boot partition: %w", err)
	}
	written, err := setupcard.WriteBoot(boot, code)
	if err != nil {
		setupcard.Console(code)
		return err
	}
	if written {
		say("wrote %s to the boot partition %s", setupcard.FileName, boot)
	}
	return setupcard.Console(code)
}

// say logs to gokrazy's log buffer and the console, where a test (or a
// person with a screen) can follow the first boot.
func say(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	log.Print(msg)
	if f, err := os.OpenFile("/dev/console", os.O_WRONLY, 0); err == nil {
		fmt.Fprintf(f, "hearth firstboot: %s\n", msg)
		f.Close()
	}
}
