"""chatstack.hardware: the CPU allocator tuning the pretrain stage applies on CPU runs."""

from __future__ import annotations

import platform
import resource

import pytest
import torch

from chatstack.hardware import restore_cpu_allocator, tune_cpu_allocator

glibc = pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc mallopt")


def faults_of_steps(steps: int = 10) -> int:
    """Minor page faults of a step-like pattern: three 1 MiB tensors (above glibc's default mmap
    threshold of 128 KiB) alive together, written, freed."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(steps):
        xs = [torch.empty(1 << 18) for _ in range(3)]
        for x in xs:
            x.fill_(1.0)  # touch every page
        del xs, x
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


@glibc
def test_tuned_allocator_stops_refaulting_freed_tensors():
    try:
        restore_cpu_allocator()
        faults_of_steps()
        untuned = faults_of_steps()
        assert tune_cpu_allocator() is True
        faults_of_steps()  # the heap grows once
        tuned = faults_of_steps()
        assert untuned > 10 * 3 * 200  # every tensor mmapped and faulted in again (256 pages each)
        assert tuned < untuned / 10
    finally:
        tune_cpu_allocator()


def test_pretrain_config_tunes_the_allocator_by_default(tmp_path):
    from chatstack.pretrain import PretrainConfig

    assert PretrainConfig(output_dir=str(tmp_path)).cpu_allocator_tuning is True
