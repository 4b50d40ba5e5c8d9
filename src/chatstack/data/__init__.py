"""Data loading: one path for Hub datasets, local files, builders and mixtures."""
from chatstack.data.loading import DataError, load_data, resolve_spec

__all__ = ["DataError", "load_data", "resolve_spec"]
