package setupui

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"
)

// The move page (/move): a member who used chat elsewhere before brings
// their contacts here (XEP-0283, xmppd/moving). They give their old
// address and its password once; the box logs in there, leaves a note
// saying where they went and asks their old contacts to follow. The
// invite's welcome page links here.

// MoveResult is what a move did, for the page.
type MoveResult struct {
	Contacts, Notified int
	Statement          bool     // the old account says where the member went
	Problems           []string // plain words
}

// Move errors the page explains; any other error is "try again later".
var (
	ErrMoveLogin       = errors.New("the old server refused the address or password")
	ErrMoveUnreachable = errors.New("the old server could not be reached")
	ErrMoveAddress     = errors.New("not an address on another server")
)

// movePerMember bounds the moves (and so the password tries against the
// old server) one member may start: the box must not become a way to
// guess passwords of accounts elsewhere.
const (
	movesPerMember = 5
	moveWindow     = time.Hour
)

type moveData struct {
	Old    string
	Error  string
	Result *MoveResult
}

func (u *UI) moveForm(w http.ResponseWriter, r *http.Request) {
	if u.d.Admin.Move == nil {
		adminUnavailable(w, r)
		return
	}
	u.tpl.Render(w, r, http.StatusOK, "move", moveData{})
}

func (u *UI) moveSubmit(w http.ResponseWriter, r *http.Request) {
	if u.d.Admin.Move == nil {
		adminUnavailable(w, r)
		return
	}
	d := moveData{Old: strings.TrimSpace(r.PostForm.Get("old"))}
	pw := r.PostForm.Get("password")
	if d.Old == "" || pw == "" || !strings.Contains(d.Old, "@") {
		d.Error = "Please give your old address (name@server) and its password."
		u.tpl.Render(w, r, http.StatusBadRequest, "move", d)
		return
	}
	if !u.moveLimit.Allow("move:" + self(r)) {
		d.Error = "You have tried several times in the last hour. Please wait an hour before trying again."
		u.tpl.Render(w, r, http.StatusTooManyRequests, "move", d)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 90*time.Second)
	defer cancel()
	res, err := u.d.Admin.Move(ctx, self(r), d.Old, pw)
	switch {
	case errors.Is(err, ErrMoveLogin):
		d.Error = "Your old server did not accept that address and password. Check both and try again."
	case errors.Is(err, ErrMoveUnreachable):
		d.Error = "The box could not reach your old server, or it could not prove it is that server. Check the address; if the server is down for now, try again later."
	case errors.Is(err, ErrMoveAddress):
		d.Error = "That is not an address on another server. Give the address you used before (name@server)."
	case err != nil:
		u.d.Log.Error("move", "user", self(r), "err", err)
		d.Error = "Something went wrong on the box. Nothing was changed; please try again in a few minutes."
	}
	if d.Error != "" {
		u.tpl.Render(w, r, http.StatusBadRequest, "move", d)
		return
	}
	d.Result = &res
	u.tpl.Render(w, r, http.StatusOK, "move", d)
}
