"""Shared fixtures: the repo, the shared data, and one micro speedrun reused by many tests."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("CHATSTACK_SHARED_DATA", REPO.parent / "shared" / "data"))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def micro_outputs(tmp_path_factory) -> Path:
    """Run the micro recipe once (every stage, toy sizes); returns its output root."""
    from chatstack.speedrun import speedrun
    work = tmp_path_factory.mktemp("micro")
    cwd = os.getcwd()
    os.chdir(work)
    try:
        speedrun(str(REPO / "recipes" / "micro"))
    finally:
        os.chdir(cwd)
    return work / "outputs" / "micro"
