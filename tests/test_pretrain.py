"""The pretrain stage at both scales: the GPT-2 124M/350M recipes sized without a GPU (dry
run), their full data path run for a few steps on local FineWeb-shaped shards with a tiny
model, streaming without materialising the corpus, atomic checkpoints, and in-training eval."""
from __future__ import annotations

import gzip
import json
from pathlib import Path

import datasets
import pytest

from chatstack.checkpoints import last_checkpoint, publish
from chatstack.config import parse_config
from chatstack.data.packing import pack
from chatstack.errors import ConfigError
from chatstack.pretrain import PretrainConfig, load_text, train

REPO = Path(__file__).resolve().parents[1]
RECIPE_124M = REPO / "recipes" / "gpt2-124m" / "pretrain.yaml"
RECIPE_350M = REPO / "recipes" / "gpt2-350m" / "pretrain.yaml"
FINEWEB_COLUMNS = ["text", "id", "dump", "url", "date", "file_path", "language", "language_score", "token_count"]
TINY_MODEL = '{"n_layer": 1, "n_embd": 32, "n_head": 2}'


def dry_run(recipe: Path, tmp_path: Path, *extra: str) -> dict:
    cfg = parse_config(PretrainConfig, recipe, ["--dry_run", "true", "--tokenizer_name_or_path", str(tmp_path / "none"),
                                                "--output_dir", str(tmp_path / "out"), *extra])
    return train(cfg)


def test_124m_recipe_is_gpt2_small_with_tied_embeddings(tmp_path, capsys):
    r = dry_run(RECIPE_124M, tmp_path)
    assert r["parameters_unpadded_vocab"] == 124_439_808  # GPT-2 small, tied embeddings, vocab 50,257
    assert r["parameters"] == 124_475_904 and r["vocab_size"] == 50_304  # llm.c's padded vocabulary
    assert r["layers_heads_width_context"] == [12, 12, 768, 1024] and r["precision"] == "bf16"
    assert r["tokens_per_step"] == 524_288 and r["gradient_accumulation_steps"] == 16  # 1 process x 32 x 1024 x 16
    assert 9.8e9 < r["total_tokens"] < 1.0e10
    mem = r["memory_per_device_gib"]
    assert 10 < mem["total"] < 80 and mem["total"] == pytest.approx(sum(v for k, v in mem.items() if k != "total"), abs=0.05)
    est = r["tokens_per_second_estimate"]
    assert all(e["per_device"] > 0 and e["hours_for_max_steps"] > 0 for e in est.values())
    assert '"memory_per_device_gib"' in capsys.readouterr().out  # printed, not only returned
    assert not (tmp_path / "out" / "metrics.json").exists()   # a dry run is not a finished stage


def test_dry_run_follows_processes_and_sharding(tmp_path, monkeypatch):
    from chatstack.model import gpt2_config, memory_per_device
    from chatstack.sizing import sharding_of
    r8 = dry_run(RECIPE_124M, tmp_path, "--dry_run_processes", "8")
    assert r8["gradient_accumulation_steps"] == 2 and r8["tokens_per_step"] == 524_288 and r8["processes"] == 8
    assert r8["sharding"] == "none"
    cfg = parse_config(PretrainConfig, RECIPE_124M, ["--output_dir", str(tmp_path)])
    monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "true")  # what `accelerate launch` sets for zero3.yaml
    monkeypatch.setenv("ACCELERATE_DEEPSPEED_ZERO_STAGE", "3")
    assert sharding_of(cfg) == "zero3"
    config = gpt2_config("gpt2-124m", vocab_size=50304)
    ddp = memory_per_device(config, r8["parameters"], 32, 1024, True, "none", 8)
    z2 = memory_per_device(config, r8["parameters"], 32, 1024, True, "zero2", 8)
    z3 = memory_per_device(config, r8["parameters"], 32, 1024, True, "zero3", 8)
    assert ddp == r8["memory_per_device_gib"]
    assert z3["weights"] < z2["weights"] == ddp["weights"] and z2["optimizer"] < ddp["optimizer"] / 7
    assert z3["activations"] == ddp["activations"]


def test_350m_preset(tmp_path):
    r = dry_run(RECIPE_350M, tmp_path)
    assert r["parameters_unpadded_vocab"] == 354_823_168  # GPT-2 medium
    assert r["layers_heads_width_context"] == [24, 16, 1024, 1024] and r["tokens_per_step"] == 524_288


def test_global_batch_tokens_must_divide(tmp_path):
    with pytest.raises(ConfigError, match="global_batch_tokens"):
        dry_run(RECIPE_124M, tmp_path, "--global_batch_tokens", "500000")


# ---- the recipe's data path on local shards shaped like FineWeb ----------------------------

def web_docs(shared_data: Path, n: int) -> list[str]:
    docs = []
    for f in sorted((shared_data / "web_text_cc").glob("*.jsonl.gz")):
        with gzip.open(f, "rt") as fh:
            docs += [json.loads(line)["text"] for line in fh if line.strip()]
    return [d for d in docs if d.strip()][:n]


def fineweb_row(i: int, text: str) -> dict:
    return {"text": text, "id": f"<urn:uuid:{i:08d}>", "dump": "CC-MAIN-2024-10", "url": f"https://example.org/{i}",
            "date": "2024-02-20T00:00:00Z", "file_path": f"s3://commoncrawl/crawl-data/{i}.warc.gz",
            "language": "en", "language_score": 0.95, "token_count": len(text) // 4}


def write_shards(docs: list[str], out: Path, fmt: str, n_shards: int = 2) -> list[str]:
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for s in range(n_shards):
        rows = [fineweb_row(i, t) for i, t in enumerate(docs) if i % n_shards == s]
        if fmt == "parquet":
            p = out / f"{s:03d}_00000.parquet"
            datasets.Dataset.from_list(rows).to_parquet(str(p))
        else:
            p = out / f"{s:03d}_00000.jsonl.gz"
            with gzip.open(p, "wt") as f:
                f.writelines(json.dumps(r) + "\n" for r in rows)
        paths.append(str(p))
    return paths


def stream_spec(tmp_path: Path, paths: list[str], fmt: str) -> Path:
    """A spec like datasets_cfg/web_fineweb.yaml (streamed, `columns: [text]`) over local shards."""
    spec = tmp_path / f"local_fineweb_{fmt}.yaml"
    spec.write_text(json.dumps({"hub": fmt, "data_files": paths, "split": "train", "streaming": True, "columns": ["text"]}))
    return spec


@pytest.mark.parametrize("fmt", ["parquet", "json"])
def test_124m_recipe_data_path_on_local_fineweb_shards(shared_data, tmp_path, monkeypatch, fmt):
    """tokenizer recipe + pretrain recipe, unchanged but for the data source and a tiny model:
    stream, hold out, shuffle, tokenize and pack on the fly, accumulate to the global batch,
    evaluate (loss, bits/byte, samples), checkpoint, for 3 steps."""
    from chatstack.tokenizer import TokenizerConfig, train_tokenizer
    monkeypatch.chdir(tmp_path)
    spec = stream_spec(tmp_path, write_shards(web_docs(shared_data, 240), tmp_path / "shards", fmt), fmt)
    tok_cfg = parse_config(TokenizerConfig, REPO / "recipes" / "gpt2-124m" / "tokenizer.yaml",
                           ["--dataset", str(spec), "--vocab_size", "600", "--output_dir", "tok", "--eval_documents", "10"])
    train_tokenizer(tok_cfg)
    cfg = parse_config(PretrainConfig, RECIPE_124M, [
        "--dataset", str(spec), "--tokenizer_name_or_path", "tok", "--output_dir", "out",
        "--model_config", TINY_MODEL, "--block_size", "64", "--per_device_train_batch_size", "4",
        "--per_device_eval_batch_size", "8", "--global_batch_tokens", "512", "--max_steps", "3",
        "--warmup_steps", "1", "--eval_steps", "3", "--save_steps", "3", "--logging_steps", "1",
        "--eval_documents", "12", "--shuffle_buffer", "50", "--dataloader_num_workers", "0",
        "--dataloader_pin_memory", "false", "--sample_max_new_tokens", "4"])
    assert cfg.gradient_accumulation_steps == 1  # set from global_batch_tokens when training starts
    metrics = train(cfg)
    assert cfg.gradient_accumulation_steps == 2  # 512 tokens = 2 x (4 x 64)
    assert metrics["train_tokens"] == 3 * 512 and metrics["tokens_per_step"] == 512
    for k in ("eval_loss", "unigram_entropy", "bits_per_byte", "tokens_per_second"):
        assert metrics[k] > 0, k
    history = json.loads((tmp_path / "out" / "log_history.json").read_text())
    assert any("eval_bits_per_byte" in h for h in history) and any("tokens_per_second" in h for h in history)
    samples = [json.loads(line) for line in (tmp_path / "out" / "samples.jsonl").read_text().splitlines()]
    assert samples[-1]["step"] == 3 and set(samples[-1]["samples"]) == set(cfg.sample_prompts)
    assert last_checkpoint(tmp_path / "out").endswith("checkpoint-3")
    assert json.loads((tmp_path / "out" / "config.json").read_text())["vocab_size"] % 64 == 0  # padded vocab


def test_stream_hold_out_is_disjoint_from_training(shared_data, tmp_path):
    docs = web_docs(shared_data, 60)
    spec = stream_spec(tmp_path, write_shards(docs, tmp_path / "shards", "parquet", n_shards=3), "parquet")
    cfg = parse_config(PretrainConfig, None, ["--dataset", str(spec), "--eval_documents", "7", "--use_cpu", "true"])
    train_text, eval_text = load_text(cfg)
    assert isinstance(train_text, datasets.IterableDataset) and isinstance(eval_text, datasets.Dataset)
    held = set(eval_text["text"])
    assert len(held) == 7
    # however the stream is later split (processes, dataloader workers), no eval document is trained on
    seen = [t for i in range(3) for t in (r["text"] for r in train_text.shard(num_shards=3, index=i))]
    assert not held & set(seen) and sorted(seen + list(held)) == sorted(set(docs))


def test_packing_is_lazy_on_a_stream():
    """Reading the first blocks of a packed stream reads only the first batch of documents."""
    pulled = []

    def gen():
        for i in range(20_000):
            pulled.append(i)
            yield {"text": f"document {i} " + "word " * 50, "url": "x"}

    from helpers_tiny_model import build_tokenizer
    ds = datasets.IterableDataset.from_generator(gen)
    blocks = pack(ds, build_tokenizer(), 32, "text")
    assert isinstance(blocks, datasets.IterableDataset)
    first = list(blocks.take(3))
    assert [len(b["input_ids"]) for b in first] == [32, 32, 32] and set(first[0]) == {"input_ids"}
    assert len(pulled) <= 2_000  # one map batch (1,000 documents) and change, not 20,000


# ---- atomic checkpoints --------------------------------------------------------------------

def test_publish_replaces_atomically_and_resume_ignores_partial_saves(tmp_path):
    run = tmp_path / "run"
    good = run / "checkpoint-4"
    good.mkdir(parents=True)
    (good / "trainer_state.json").write_text("{}")
    (run / "checkpoint-8").mkdir()              # written in place by an older, non-atomic save: no state
    staged = run / ".staging" / "checkpoint-12"
    staged.mkdir(parents=True)
    (staged / "model.safetensors").write_bytes(b"x")
    assert last_checkpoint(run) == str(good)
    (staged / "trainer_state.json").write_text("{}")
    publish(str(staged), str(run / "checkpoint-12"))
    assert last_checkpoint(run) == str(run / "checkpoint-12") and not staged.exists()
    again = run / ".staging" / "checkpoint-12"  # the same step saved again after resuming from checkpoint-4
    again.mkdir()
    (again / "trainer_state.json").write_text('{"again": 1}')
    publish(str(again), str(run / "checkpoint-12"))
    assert json.loads((run / "checkpoint-12" / "trainer_state.json").read_text()) == {"again": 1}
    assert not (run / "checkpoint-12.old").exists()


def test_streamed_run_resumes_on_the_same_blocks(shared_data, tmp_path, monkeypatch):
    """A streamed (shuffled, held-out) run restarted from its checkpoint replays the stream to the
    same position: steps after the checkpoint see the same blocks as an uninterrupted run."""
    import shutil

    from helpers_tiny_model import build_tokenizer
    monkeypatch.chdir(tmp_path)
    build_tokenizer(vocab_size=400).save_pretrained("tok")
    spec = stream_spec(tmp_path, write_shards(web_docs(shared_data, 80), tmp_path / "shards", "parquet"), "parquet")
    args = ["--dataset", str(spec), "--tokenizer_name_or_path", "tok", "--model_config", TINY_MODEL,
            "--block_size", "32", "--per_device_train_batch_size", "4", "--global_batch_tokens", "256",
            "--max_steps", "4", "--save_steps", "2", "--eval_steps", "4", "--logging_steps", "1", "--warmup_steps", "1",
            "--eval_documents", "5", "--shuffle_buffer", "20", "--dataloader_num_workers", "0",
            "--dataloader_pin_memory", "false", "--sample_prompts", "The", "--sample_max_new_tokens", "2",
            "--disable_tqdm", "true"]

    def run(out):
        cfg = parse_config(PretrainConfig, RECIPE_124M, ["--output_dir", out, *args])
        m = train(cfg)
        hist = json.loads((tmp_path / out / "log_history.json").read_text())
        return m, {h["step"]: h["loss"] for h in hist if "loss" in h}

    ref, ref_losses = run("a")
    run("b")
    shutil.rmtree(tmp_path / "b" / "checkpoint-4")   # as if killed after checkpoint-2
    (tmp_path / "b" / "metrics.json").unlink()
    resumed, losses = run("b")
    assert resumed["resumed_from"].endswith("checkpoint-2")
    assert losses[3] == pytest.approx(ref_losses[3], abs=1e-6) and losses[4] == pytest.approx(ref_losses[4], abs=1e-6)
    assert resumed["eval_loss"] == pytest.approx(ref["eval_loss"], abs=1e-6)


def test_collate_blocks_takes_lists_and_a_streams_int32_arrays_alike():
    """A map-style dataset hands back lists, a stream the int32 arrays pack wrote: both stack to
    one int64 batch (a list of arrays through torch.tensor is slow: it warns, and fails here)."""
    import warnings

    import numpy as np
    import torch

    from chatstack.data.packing import collate_blocks

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        lists = collate_blocks([{"input_ids": [1, 2, 3]}, {"input_ids": [4, 5, 6]}])
        arrays = collate_blocks([{"input_ids": np.array(r, dtype=np.int32)} for r in ([1, 2, 3], [4, 5, 6])])
    for batch in (lists, arrays):
        assert batch["input_ids"].dtype == torch.long and batch["input_ids"].tolist() == [[1, 2, 3], [4, 5, 6]]
        assert torch.equal(batch["labels"], batch["input_ids"])


def test_position_offsets_train_every_position_of_the_context():
    """With position_offsets, 128-token blocks of a 256-position model start anywhere in
    [0, 128]: consecutive ids, within the context, the later half reached; the model takes them."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    from chatstack.data.packing import offset_collator

    torch.manual_seed(0)
    batch = offset_collator(256)([{"input_ids": list(range(128))} for _ in range(64)])
    pos = batch["position_ids"]
    assert pos.shape == (64, 128) and torch.equal(pos[:, 1:] - pos[:, :-1], torch.ones(64, 127, dtype=pos.dtype))
    assert pos.min() >= 0 and pos.max() <= 255 and (pos[:, -1] > 200).any() and len(set(pos[:, 0].tolist())) > 20
    model = GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=16, n_head=2, n_positions=256, vocab_size=256))
    loss = model(**{k: v[:2] for k, v in batch.items()}).loss
    loss.backward()
    grad = model.transformer.wpe.weight.grad
    assert grad[pos[:2].flatten()].abs().sum() > 0 and grad[pos[:2].max() + 1:].abs().sum() == 0
