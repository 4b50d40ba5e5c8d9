"""`max_train_seconds`: the pretrain stage trains for a wall-clock budget, its LR schedule re-sized
as it goes so that the decay ends with the budget (learning per minute, benchmarks/learning_per_minute.py)."""
from __future__ import annotations

import json
from pathlib import Path

from chatstack.config import parse_config
from chatstack.pretrain import PretrainConfig, train

REPO = Path(__file__).resolve().parents[1]
MICRO = REPO / "recipes" / "micro"


def test_budget_stops_the_run_with_its_schedule_decayed(tmp_path):
    from chatstack.tokenizer import TokenizerConfig, train_tokenizer
    tok = tmp_path / "tokenizer"
    train_tokenizer(parse_config(TokenizerConfig, MICRO / "tokenizer.yaml", ["--output_dir", str(tok)]))
    out = tmp_path / "pretrain"
    m = train(parse_config(PretrainConfig, MICRO / "pretrain.yaml", [
        "--tokenizer_name_or_path", str(tok), "--output_dir", str(out), "--max_steps", "100000",
        "--max_train_seconds", "4", "--optimizer", "adamw", "--eval_strategy", "no", "--save_strategy", "no",
        "--logging_steps", "1",
        "--warmup_steps", "5", "--world_recall", "false", "--disable_tqdm", "true", "--report_to", "none"]))
    lrs = [h["learning_rate"] for h in json.loads((out / "log_history.json").read_text()) if "learning_rate" in h]
    steps = m["train_tokens"] // m["tokens_per_step"]
    assert 20 < steps < 100000 and 3.5 < m["train_seconds"] < 8  # AdamW: more micro steps per second under load
    assert max(lrs) > 0.9 * 2e-3 and lrs[-1] < 0.1 * max(lrs)  # warmed up, then decayed to ~0 by the budget's end
