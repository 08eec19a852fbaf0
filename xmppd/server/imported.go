package server

// AccountImported fires, with the account's name, after an import
// (xmppd/portable: the invite page's "bring your data", the admin's import
// of members) committed a new account into the store of this running
// server. Modules that keep an account's state in memory load it again
// here: blocking read every block list at its start, so an imported list
// would not be enforced until the next restart; mam forgets the archive
// id and preferences it may have cached for the name before the account
// existed. Everything else is read from the store when used.
var AccountImported = NewEvent[string]("account-imported")
