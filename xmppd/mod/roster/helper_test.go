package roster_test

import "github.com/hearthchat/hearth/xmppd/mod/internal/modtest"

type cl = modtest.Client

var (
	login      = modtest.Login
	isPresence = modtest.IsPresence
	isPush     = modtest.IsPush
	item       = modtest.Item
	errCond    = modtest.ErrCond
)
