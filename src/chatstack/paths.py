"""Where chatstack finds its own resources (datasets_cfg/, recipes/) and the shared data."""
from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def find_resource(relative: str) -> Path | None:
    """A path as given, else relative to the current directory, else to the repo root."""
    for candidate in (Path(relative), Path.cwd() / relative, REPO_ROOT / relative):
        if candidate.is_file():
            return candidate
    return None
