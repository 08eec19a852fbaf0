package xmppd

import (
	"context"
	"errors"

	"github.com/hearthchat/hearth/setup-ui"
	"github.com/hearthchat/hearth/xmppd/moving"
)

// move is the move page's dependency (setup-ui/move.go): the member's
// contacts from their old address, by xmppd/moving.
func (d *Daemon) move(ctx context.Context, user, old, password string) (setupui.MoveResult, error) {
	res, err := moving.Move(ctx, moving.Options{Server: d.Server, User: user, Old: old, Password: password})
	switch {
	case errors.Is(err, moving.ErrLogin):
		err = setupui.ErrMoveLogin
	case errors.Is(err, moving.ErrUnreachable):
		err = setupui.ErrMoveUnreachable
	case errors.Is(err, moving.ErrSame), errors.Is(err, moving.ErrAddress):
		err = setupui.ErrMoveAddress
	}
	return setupui.MoveResult{Contacts: res.Contacts, Notified: res.Notified, Statement: res.Statement, Problems: res.Problems}, err
}
