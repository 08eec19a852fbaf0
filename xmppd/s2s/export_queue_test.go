package s2s

// QueuedFor reports the stanzas and bytes waiting in the one queue from
// local to domain (tests: Queued sums every domain's, and a cap is per
// queue).
func (s *S2S) QueuedFor(local, domain string) (stanzas, bytes int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r := s.remotes[local+" "+domain]; r != nil {
		return len(r.q), r.bytes
	}
	return 0, 0
}
