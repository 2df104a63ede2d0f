package benchset

// StreamAll makes Generate stream every layer, as it does large ones.
func StreamAll(s Spec) Spec {
	s.streamAll = true
	return s
}
