package tokens

// WaitingLookups is how many store lookups wait for a shared query.
func WaitingLookups(s *Service) int { return s.byDigest.Waiting() }
