package server

// IQFilter: every iq stanza (any type) before the core routes or answers
// it, from a local client (Origin set) or from anywhere else for a local
// account or the domain. Return true once the hook has answered or
// dropped it. Blocking (XEP-0191) needs it: an iq to a full JID is
// delivered straight to the session and an iq to a bare JID is answered
// by whichever module handles its payload, so no other hook sees both,
// nor the iqs a user sends.
const IQFilter = "iq-filter"
