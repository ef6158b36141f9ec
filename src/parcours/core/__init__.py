"""Core: settings, database, auth, audit trail, errors, i18n."""
