"""`optimizer: muon` in the pretrain stage (chatstack.optim): which parameters Muon takes, its
learning-rate scale on GPT-2's Conv1D layout, training through the Trainer (the loss falls, the
scheduler drives Muon's lr too) and a resume that continues exactly where the run stopped."""
from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
import torch
from transformers import GPT2LMHeadModel, TrainerCallback

from chatstack.config import parse_config
from chatstack.errors import ConfigError
from chatstack.model import gpt2_config
from chatstack.optim import MuonWithAdamW, muon_lr_scale, split_parameters
from chatstack.pretrain import PretrainConfig, build_trainer, train

REPO = Path(__file__).resolve().parents[1]
MICRO = REPO / "recipes" / "micro"
MATRICES = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")


@pytest.fixture(scope="module")
def micro_tokenizer(tmp_path_factory) -> Path:
    from chatstack.tokenizer import TokenizerConfig, train_tokenizer
    out = tmp_path_factory.mktemp("tok") / "tokenizer"
    train_tokenizer(parse_config(TokenizerConfig, MICRO / "tokenizer.yaml", ["--output_dir", str(out)]))
    return out


def micro_cfg(tok: Path, out: Path, *extra: str) -> PretrainConfig:
    return parse_config(PretrainConfig, MICRO / "pretrain.yaml", [
        "--tokenizer_name_or_path", str(tok), "--output_dir", str(out), "--optimizer", "muon", "--logging_steps", "1",
        "--sample_max_new_tokens", "2", "--disable_tqdm", "true", "--report_to", "none", *extra])


def test_split_puts_block_matrices_under_muon_and_the_rest_under_adamw():
    model = GPT2LMHeadModel(gpt2_config("micro", vocab_size=97))
    muon, adamw = split_parameters(model)
    layers = model.config.n_layer
    assert set(muon) == {f"transformer.h.{i}.{m}" for i in range(layers) for m in MATRICES}
    assert {"transformer.wte.weight", "transformer.wpe.weight", "transformer.ln_f.weight"} <= set(adamw)
    assert all(n.endswith(".bias") or ".ln_" in n or n.startswith(("transformer.wte", "transformer.wpe"))
               for n in adamw)
    assert model.lm_head.weight is model.transformer.wte.weight  # the tied head is wte: AdamW's, listed once
    params = {id(p) for p in model.parameters()}
    got = [id(p) for p in [*muon.values(), *adamw.values()]]
    assert len(got) == len(set(got)) == len(params) and set(got) == params  # every parameter exactly once


def test_conv1d_weights_get_the_lr_scale_of_their_own_fan_out():
    """torch's Muon scales an (A, B) update by sqrt(max(1, A/B)); Conv1D is (in, out): the factor
    makes the product Keller Jordan's sqrt(max(1, fan_out / fan_in)) for every block matrix."""
    model = GPT2LMHeadModel(gpt2_config("micro", vocab_size=97))
    block = model.transformer.h[0]
    for module in (block.attn.c_attn, block.attn.c_proj, block.mlp.c_fc, block.mlp.c_proj):
        fan_in, fan_out = module.weight.shape
        torch_scale = math.sqrt(max(1, fan_in / fan_out))  # torch.optim._muon._adjust_lr, "original"
        assert muon_lr_scale(module, module.weight.shape, "original") * torch_scale == pytest.approx(
            math.sqrt(max(1, fan_out / fan_in)))
        assert muon_lr_scale(module, module.weight.shape, "match_rms_adamw") == 1.0
    assert muon_lr_scale(torch.nn.Linear(4, 8), torch.Size([8, 4]), "original") == 1.0  # (out, in): torch reads it right


def test_orthogonalises_in_fp32_where_bf16_is_emulated(monkeypatch, tmp_path):
    """Where the CPU has no native bf16 the optimizer runs torch's Newton-Schulz iteration in fp32
    (same result to bf16 precision) for Muon's step only, and puts torch's back."""
    from torch.optim import _muon

    import chatstack.optim as optim
    coefficients = (3.4445, -4.7750, 2.0315)
    for g in (torch.randn(64, 256), torch.randn(256, 64)):  # wide and tall (Conv1D's c_fc and c_proj)
        ref = _muon._zeropower_via_newtonschulz(g, coefficients, 5, 1e-7).float()
        got = optim.orthogonalize_fp32(g, coefficients, 5, 1e-7)
        assert got.dtype == torch.float32 and got.shape == g.shape
        assert (got - ref).abs().max() < 0.05 and (got - ref).norm() / ref.norm() < 0.02

    calls = []
    monkeypatch.setattr(optim, "cpu_has_fast_bf16", lambda: False)
    monkeypatch.setattr(optim, "orthogonalize_fp32", lambda g, *a: calls.append(g.shape) or g.float())
    model = GPT2LMHeadModel(gpt2_config("micro", vocab_size=97))
    opt = optim.muon_with_adamw(model, parse_config(PretrainConfig, MICRO / "pretrain.yaml",
                                                    ["--output_dir", str(tmp_path)]))
    assert opt.fp32
    for p in model.parameters():
        p.grad = torch.randn_like(p)
    original = _muon._zeropower_via_newtonschulz
    opt.step()
    assert len(calls) == 4 * model.config.n_layer and _muon._zeropower_via_newtonschulz is original


def test_config_rejects_unknown_optimizer(micro_tokenizer, tmp_path):
    with pytest.raises(ConfigError, match="optimizer"):
        micro_cfg(micro_tokenizer, tmp_path, "--optimizer", "lion")


class LrRecorder(TrainerCallback):
    def __init__(self):
        self.rows = []

    def on_step_end(self, args, state, control, optimizer=None, **kwargs):
        inner = getattr(optimizer, "optimizer", optimizer)
        self.rows.append([(g["lr"], g["initial_lr"]) for g in inner.param_groups])


def test_trainer_steps_muon_under_the_schedule_and_the_loss_falls(micro_tokenizer, tmp_path):
    cfg = micro_cfg(micro_tokenizer, tmp_path / "out", "--max_steps", "12", "--eval_strategy", "no",
                    "--save_strategy", "no", "--learning_rate", "3e-3", "--muon_learning_rate", "0.03")
    cfg.sample_prompts = []
    trainer, _ = build_trainer(cfg)
    rec = LrRecorder()
    trainer.add_callback(rec)
    trainer.train()
    opt = trainer.optimizer.optimizer
    assert isinstance(opt, MuonWithAdamW)
    adamw, muon = opt.optimizers
    assert isinstance(muon, torch.optim.Muon) and {g["initial_lr"] for g in adamw.param_groups} == {3e-3}
    assert {round(g["initial_lr"] / 0.03, 4) for g in muon.param_groups} == {0.5, 1.0, round(math.sqrt(3), 4), 2.0}
    assert all(s["momentum_buffer"].abs().sum() > 0 for s in muon.state.values())
    assert len(muon.state) == 4 * trainer.model.config.n_layer
    # every group follows the one warmup + cosine: lr / initial lr is the same multiplier for all
    for row in rec.rows:
        assert len({round(lr / initial, 6) for lr, initial in row}) == 1
    multipliers = [row[-1][0] / row[-1][1] for row in rec.rows]
    assert max(multipliers) == pytest.approx(1.0, abs=0.02) and multipliers[-1] < 0.01  # warmed up, decayed to ~0
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert losses[-1] < losses[0] - 0.5, losses


def losses(out: Path) -> dict[int, float]:
    return {h["step"]: h["loss"] for h in json.loads((out / "log_history.json").read_text()) if "loss" in h}


def test_resume_restores_muon_state_and_continues_the_same_run(micro_tokenizer, tmp_path):
    """A run resumed from checkpoint-4 logs the uninterrupted run's losses at steps 5-8; the same
    checkpoint with Muon's momentum zeroed does not (the restored state is what makes them equal)."""
    args = ("--max_steps", "8", "--save_steps", "4", "--eval_steps", "4", "--world_recall", "false")
    ref = train(micro_cfg(micro_tokenizer, tmp_path / "ref", *args))
    ref_losses = losses(tmp_path / "ref")
    state = torch.load(tmp_path / "ref" / "checkpoint-4" / "optimizer.pt", weights_only=True)
    assert set(state) == {"adamw", "muon"} and len(state["muon"]["state"]) > 0

    for name, zero_momentum in (("resumed", False), ("momentum_lost", True)):
        out = tmp_path / name
        shutil.copytree(tmp_path / "ref" / "checkpoint-4", out / "checkpoint-4")
        if zero_momentum:
            for s in state["muon"]["state"].values():
                s["momentum_buffer"].zero_()
            torch.save(state, out / "checkpoint-4" / "optimizer.pt")
        got = train(micro_cfg(micro_tokenizer, out, *args))
        assert got["resumed_from"] == str(out / "checkpoint-4")
        after = losses(out)
        if zero_momentum:
            assert any(abs(after[s] - ref_losses[s]) > 1e-3 for s in range(5, 9)), (after, ref_losses)
        else:
            for s in range(5, 9):
                assert after[s] == pytest.approx(ref_losses[s], abs=1e-5), s
            assert got["eval_loss"] == pytest.approx(ref["eval_loss"], abs=1e-5)
