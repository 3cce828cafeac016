package session

// LockForTest takes the lock that a read's cancellation needs to reach the
// read deadline, holding that cancellation back until unlock is called.
func LockForTest(s *Session) (unlock func()) {
	s.mu.Lock()
	return s.mu.Unlock
}
