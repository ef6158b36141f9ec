"""KPIs and dashboards, computed by DuckDB over a Parquet snapshot of the operational data."""
