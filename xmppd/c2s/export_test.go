package c2s

// FailureCount is how many SASL failures the back-off remembers under key
// (an address, or OnionBucket+"\x00"+name).
func (c *C2S) FailureCount(key string) int { return c.ips.failureCount(key) }
