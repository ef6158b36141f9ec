"""parcours: omnichannel engagement for life sciences."""
