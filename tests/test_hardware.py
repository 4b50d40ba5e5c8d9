"""chatstack.hardware: the CPU allocator tuning the pretrain stage applies on CPU runs, and the
attention kernel a training step picks."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
glibc = pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc mallopt")

# A step-like pattern: three 8 MiB tensors alive together, written, freed, ten times; minor page faults
# counted after one warm-up pass. In a fresh process, as the allocator's state depends on what ran before.
PATTERN = """
import resource, sys, torch
from chatstack.hardware import tune_cpu_allocator
def steps(n=10):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(n):
        xs = [torch.empty(2 << 20) for _ in range(3)]
        for x in xs:
            x.fill_(1.0)
        del xs, x
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
if sys.argv[1] == "tuned":
    assert tune_cpu_allocator() is True
steps()
print(steps())
"""


def faults(mode: str) -> int:
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    out = subprocess.run([sys.executable, "-c", PATTERN, mode], capture_output=True, text=True, env=env, check=True)
    return int(out.stdout.strip().splitlines()[-1])


@glibc
def test_tuned_allocator_stops_refaulting_freed_tensors():
    default, tuned = faults("default"), faults("tuned")
    assert tuned < 500  # the tuned allocator keeps the tensors mapped: no refaulting
    if default <= 5_000:  # glibc's dynamic mmap threshold already kept them here (seen on a CI run)
        pytest.skip(f"the default allocator did not refault here ({default} faults): nothing to compare")
    assert tuned < default / 10  # glibc hands the tensors back and faults them in again (2,048 pages each)


def test_pretrain_config_tunes_the_allocator_by_default(tmp_path):
    from chatstack.pretrain import PretrainConfig

    assert PretrainConfig(output_dir=str(tmp_path)).cpu_allocator_tuning is True


def test_training_attention_is_eager_only_for_bf16_on_a_cpu():
    from types import SimpleNamespace

    from chatstack.hardware import training_attention

    def cfg(bf16, kernel="auto"):
        return SimpleNamespace(use_cpu=True, bf16=bf16, attn_implementation=kernel)

    assert training_attention(cfg(True)) == "eager"
    assert training_attention(cfg(False)) == "sdpa"
    assert training_attention(cfg(True, "sdpa")) == "sdpa"  # what the recipe names wins
    assert training_attention(cfg(False, "flash_attention_2")) == "flash_attention_2"


@pytest.mark.parametrize("bf16,kernel", [("true", "eager"), ("false", "sdpa")])
def test_pretrain_builds_the_resolved_attention(tmp_path, bf16, kernel):
    """`attn_implementation: auto` reaches the model the Trainer trains (building does not train:
    bf16 is set as asked on any CPU)."""
    from chatstack.config import parse_config
    from chatstack.pretrain import PretrainConfig, build_trainer
    from chatstack.tokenizer import TokenizerConfig, train_tokenizer

    recipes = Path(__file__).resolve().parents[1] / "recipes" / "micro"
    tok = tmp_path / "tok"
    train_tokenizer(parse_config(TokenizerConfig, recipes / "tokenizer.yaml", ["--output_dir", str(tok)]))
    cfg = parse_config(PretrainConfig, recipes / "pretrain.yaml", [
        "--output_dir", str(tmp_path / "out"), "--tokenizer_name_or_path", str(tok), "--bf16", bf16,
        "--attn_implementation", "auto"])
    trainer, _ = build_trainer(cfg)
    assert trainer.model.config._attn_implementation == kernel


def test_resolve_bf16_keeps_bf16_on_a_fast_cpu_and_sizes_onednn_cache(monkeypatch):
    from types import SimpleNamespace

    from chatstack import hardware

    monkeypatch.delenv("ONEDNN_PRIMITIVE_CACHE_CAPACITY", raising=False)
    monkeypatch.setattr(hardware, "cpu_has_fast_bf16", lambda: False)
    slow = SimpleNamespace(use_cpu=True, bf16=True, mixed_precision="bf16")
    hardware.resolve_bf16(slow)
    assert (slow.bf16, slow.mixed_precision) == (False, "no")
    assert "ONEDNN_PRIMITIVE_CACHE_CAPACITY" not in os.environ  # fp32: no bf16 kernels to cache
    monkeypatch.setattr(hardware, "cpu_has_fast_bf16", lambda: True)
    fast = SimpleNamespace(use_cpu=True, bf16=True)
    hardware.resolve_bf16(fast)
    assert fast.bf16 is True
    assert os.environ["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] == hardware.ONEDNN_CACHE_CAPACITY
    monkeypatch.setenv("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "2048")
    hardware.resolve_bf16(fast)
    assert os.environ["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] == "2048"  # the environment's own setting wins
