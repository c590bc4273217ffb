"""keboola-sync: keep a folder of CSV files in sync with Keboola Storage."""

__version__ = "0.1.0"
