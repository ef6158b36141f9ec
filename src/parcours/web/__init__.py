"""Web shell: layout, shared templates and macros, static assets, error pages."""
