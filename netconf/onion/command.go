package onion

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// BundleDir is where the appliance image carries Debian's tor, its shared
// libraries and their dynamic loader (see image/tor/collect.sh). gokrazy has
// no libc and no shell, so tor cannot run as a normal program there: the
// loader is started instead, and it loads tor with the bundled libraries.
const BundleDir = "/usr/lib/tor"

// BundleCommand returns the command that runs the tor bundled in dir through
// its own dynamic loader:
//
//	<dir>/ld-linux-….so.N --library-path <dir>/lib <dir>/tor
//
// ok is false when dir holds no such bundle.
func BundleCommand(dir string) (argv []string, ok bool) {
	tor := filepath.Join(dir, "tor")
	if st, err := os.Stat(tor); err != nil || !st.Mode().IsRegular() {
		return nil, false
	}
	loaders, _ := filepath.Glob(filepath.Join(dir, "ld-linux*.so*"))
	if len(loaders) != 1 {
		return nil, false
	}
	return []string{loaders[0], "--library-path", filepath.Join(dir, "lib"), tor}, true
}

// errNoTor means no tor program was found; the status says so in plain words.
var errNoTor = errors.New("tor program not found")

// resolveCommand turns Options.TorExe into a runnable command. Empty means:
// the image's bundle if there is one, else `tor` on PATH, else Debian's
// places (PATH often lacks /usr/sbin for non-root users).
func resolveCommand(torExe []string) ([]string, error) {
	if len(torExe) > 0 {
		p, err := exec.LookPath(torExe[0])
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %v", errNoTor, torExe[0], err)
		}
		return append([]string{p}, torExe[1:]...), nil
	}
	if argv, ok := BundleCommand(BundleDir); ok {
		return argv, nil
	}
	if p, err := exec.LookPath("tor"); err == nil {
		return []string{p}, nil
	}
	for _, p := range []string{"/usr/sbin/tor", "/usr/bin/tor"} {
		if _, err := exec.LookPath(p); err == nil {
			return []string{p}, nil
		}
	}
	return nil, fmt.Errorf("%w: not in %s nor on PATH", errNoTor, BundleDir)
}
