"""A local emulator of the Keboola Storage API (and its S3 file storage) for tests and trials."""

__version__ = "0.1.0"
