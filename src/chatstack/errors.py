"""The errors chatstack raises for input it cannot use: a config, data, a model folder to
export or push, an lm-eval task. Each names the file, line or key that is wrong and what
was expected; `chatstack <command>` prints it and exits 2 instead of a traceback.

Standard library only, so that any module (and the CLI) can raise or catch these without
importing torch, datasets or transformers. Every class is a ValueError.

The tools have no exception of their own: a failed tool call is a result the model reads
(`Error: ...`, chatstack.tools.sandbox.ERROR_PREFIX), a bad tool config is a ConfigError
and a bad search store a DataError. `CurateInputError` stays in chatstack.curate.blocks:
it is raised inside datatrove tasks and reaches the user as the DataError that names the
failed curation stage.
"""
from __future__ import annotations

__all__ = ["ChatstackError", "ConfigError", "DataError", "ExportError", "HarnessError", "HubError"]


class ChatstackError(ValueError):
    """Input chatstack cannot use; the message says what is wrong and where."""


class ConfigError(ChatstackError):
    """A config that cannot be used, with the file and key that are wrong."""


class DataError(ChatstackError):
    """Data that cannot be used, naming the file, line or key and what was expected."""


class ExportError(ChatstackError):
    """A model or tokenizer that cannot be written as a llama.cpp-compatible GGUF."""


class HubError(ChatstackError):
    """A folder that should not be pushed, or a card that the Hub would reject."""


class HarnessError(ChatstackError):
    """A task or data file that lm-eval could not use."""
