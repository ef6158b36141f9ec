"""Consent per HCP and channel, with its proof; double opt-in; GDPR access and erasure."""
