package turn

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Credentials in the TURN REST shared-secret scheme (the one coturn's
// use-auth-secret and every XMPP server with XEP-0215 use): the username
// is "<expiry unix seconds>:<account>", the password is
// base64(HMAC-SHA1(secret, username)). The server keeps no list of issued
// credentials: it recomputes the password from the username, so a
// credential cannot be extended (the expiry is inside what is signed) and
// cannot be made without the secret.

// MaxTTL bounds how far in the future a credential may expire. A username
// claiming a later expiry is refused even with the right password: it can
// only come from a secret that leaked or a clock that jumped.
const MaxTTL = 48 * time.Hour

// Credential is one issued TURN login.
type Credential struct {
	Username, Password string
	Expires            time.Time
}

// Issue makes a credential for account valid for ttl from now.
func Issue(secret []byte, account string, now time.Time, ttl time.Duration) Credential {
	exp := now.Add(ttl).Truncate(time.Second)
	user := strconv.FormatInt(exp.Unix(), 10) + ":" + account
	return Credential{Username: user, Password: password(secret, user), Expires: exp}
}

func password(secret []byte, username string) string {
	m := hmac.New(sha1.New, secret)
	m.Write([]byte(username))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

var errExpired = errors.New("credential expired")

// check parses a username and returns the account it was issued to and
// the password it must come with.
func check(secret []byte, username string, now time.Time) (account, pass string, err error) {
	exp, account, ok := strings.Cut(username, ":")
	if !ok || account == "" || exp == "" || exp[0] == '+' || exp[0] == '-' {
		return "", "", fmt.Errorf("turn: username %q is not expiry:account", username)
	}
	sec, err := strconv.ParseInt(exp, 10, 64)
	if err != nil {
		return "", "", fmt.Errorf("turn: username %q: %w", username, err)
	}
	t := time.Unix(sec, 0)
	switch {
	case !now.Before(t):
		return "", "", fmt.Errorf("turn: %s: %w at %s", username, errExpired, t.UTC().Format(time.RFC3339))
	case t.Sub(now) > MaxTTL+time.Minute:
		return "", "", fmt.Errorf("turn: %s expires too far in the future", username)
	}
	return account, password(secret, username), nil
}
