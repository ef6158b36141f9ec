"""Accounts: HCPs, HCOs, affiliations, addresses, segments, target lists, territories, products."""
