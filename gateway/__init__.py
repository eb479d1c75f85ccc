"""A model gateway: one public entrypoint in front of ML model servers."""

__version__ = "0.2.0"
