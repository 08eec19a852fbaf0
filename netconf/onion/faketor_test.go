package onion

// A stand-in for tor that speaks just enough of the control protocol to
// drive the parts the real-tor tests cannot reach without the Tor network:
// bootstrap progress, the descriptor upload, a bootstrap that never ends.
// The real-tor tests (onion_e2e_test.go) cover the same path up to the
// network; this fake checks what happens after it. It also records what we
// asked of tor, so the tests can check the command line and commands.

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cretz/bine/control"
	"github.com/cretz/bine/torutil"
)

// fakeTorEnv selects the fake's behaviour once networking is on:
// "publish" (bootstraps, uploads our descriptor), "other" (bootstraps, but
// only another service's descriptor is uploaded), "stuck" (never
// finishes bootstrapping), "flaky" (publishes, then loses the network for
// a while).
const fakeTorEnv = "HEARTH_ONION_FAKE_TOR"

func TestMain(m *testing.M) {
	if mode := os.Getenv(fakeTorEnv); mode != "" {
		os.Exit(fakeTor(mode, os.Args[1:]))
	}
	os.Exit(m.Run())
}

// fakeTor runs as the child process in place of tor.
func fakeTor(mode string, args []string) int {
	opt := map[string]string{}
	for i := 0; i+1 < len(args); i += 2 {
		opt[strings.TrimPrefix(args[i], "--")] = args[i+1]
	}
	dataDir := opt["DataDirectory"]
	logf, err := os.OpenFile(filepath.Join(dataDir, "fake-tor.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		fmt.Println(err)
		return 1
	}
	defer logf.Close()
	fmt.Fprintf(logf, "ARGS %s\n", strings.Join(args, " "))
	sock, ok := strings.CutPrefix(opt["ControlPort"], "unix:")
	if !ok {
		fmt.Fprintln(logf, "no unix control port")
		return 1
	}
	l, err := net.Listen("unix", sock)
	if err != nil {
		fmt.Fprintln(logf, err)
		return 1
	}
	c, err := l.Accept()
	if err != nil {
		return 1
	}
	l.Close()
	r := bufio.NewReader(c)
	send := func(lines ...string) {
		for _, s := range lines {
			fmt.Fprintf(c, "%s\r\n", s)
		}
	}
	serviceID := ""
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			// Owner gone: like tor after TAKEOWNERSHIP.
			fmt.Fprintln(logf, "EOF")
			if os.Getenv("HEARTH_FAKE_DEBUG") != "" {
				fmt.Fprintf(os.Stderr, "%s fake: EOF\n", time.Now().Format("15:04:05.000"))
			}
			return 0
		}
		line = strings.TrimRight(line, "\r\n")
		fmt.Fprintf(logf, "CMD %s\n", line)
		if os.Getenv("HEARTH_FAKE_DEBUG") != "" {
			fmt.Fprintf(os.Stderr, "%s fake: %s\n", time.Now().Format("15:04:05.000"), line)
		}
		verb, rest, _ := strings.Cut(line, " ")
		switch verb {
		case "PROTOCOLINFO":
			send("250-PROTOCOLINFO 1", "250-AUTH METHODS=NULL", `250-VERSION Tor="0.4.9.11"`, "250 OK")
		case "GETINFO":
			if rest == "version" {
				send("250-version=0.4.9.11 (fake)", "250 OK")
			} else {
				send("552 Unrecognized key")
			}
		case "ADD_ONION":
			keyArg, _, _ := strings.Cut(rest, " ")
			k, err := control.KeyFromString(keyArg)
			if err != nil {
				send("513 Invalid key blob")
				continue
			}
			serviceID = torutil.OnionServiceIDFromPrivateKey(k.(*control.ED25519Key).KeyPair)
			send("250-ServiceID="+serviceID, "250 OK")
		case "SETCONF":
			send("250 OK")
			if rest == "DisableNetwork=0" {
				go fakeNetwork(mode, send, serviceID)
			}
		default:
			send("250 OK")
		}
	}
}

func fakeNetwork(mode string, send func(...string), serviceID string) {
	otherUpload := func() {
		send("650 HS_DESC UPLOAD aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa UNKNOWN $0000000000000000000000000000000000000000~x")
		send("650 HS_DESC UPLOADED aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa UNKNOWN $0000000000000000000000000000000000000000~x")
	}
	// The pauses only pace the events like a real bootstrap; no test
	// relies on them for ordering.
	for _, s := range []string{"5 TAG=conn SUMMARY=\"Connecting to a relay\"", "50 TAG=loading_descriptors SUMMARY=\"Loading relay descriptors\""} {
		time.Sleep(20 * time.Millisecond)
		send("650 STATUS_CLIENT NOTICE BOOTSTRAP PROGRESS=" + s)
	}
	if mode == "other" {
		// Before the last bootstrap step: the service handles events in
		// order, so a test that sees 100% knows this upload was handled.
		otherUpload()
	}
	if mode != "stuck" {
		time.Sleep(20 * time.Millisecond)
		send("650 STATUS_CLIENT NOTICE BOOTSTRAP PROGRESS=100 TAG=done SUMMARY=\"Done\"")
	}
	if mode == "publish" || mode == "flaky" {
		time.Sleep(20 * time.Millisecond)
		otherUpload()
	}
	if mode == "publish" || mode == "flaky" {
		send("650 HS_DESC UPLOAD " + serviceID + " UNKNOWN $1111111111111111111111111111111111111111~relay")
		time.Sleep(20 * time.Millisecond)
		send("650 HS_DESC UPLOADED " + serviceID + " UNKNOWN $1111111111111111111111111111111111111111~relay")
	}
	if mode == "flaky" {
		time.Sleep(300 * time.Millisecond)
		send("650 NETWORK_LIVENESS DOWN")
		time.Sleep(300 * time.Millisecond)
		send("650 NETWORK_LIVENESS UP")
	}
}
