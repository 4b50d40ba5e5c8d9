"""Data loading: one path for Hub datasets, local files, builders and mixtures."""
from chatstack.data.loading import load_data, load_eval_split, load_splits, resolve_spec

__all__ = ["load_data", "load_eval_split", "load_splits", "resolve_spec"]
