"""Approved Email: MLR-approved templates, tokens reps may fill, gated sending, tracking."""
