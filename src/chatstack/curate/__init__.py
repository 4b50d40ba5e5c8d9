"""FineWeb-style curation of web text with datatrove: `chatstack curate --config X.yaml`.

See chatstack.curate.pipeline for the stages and chatstack.curate.blocks for the few blocks
datatrove lacks (offline language id, HTML-folder reader, tolerant readers, phone-number PII).
"""
from chatstack.curate.config import CurateConfig
from chatstack.curate.run import curate, main

__all__ = ["CurateConfig", "curate", "main"]
