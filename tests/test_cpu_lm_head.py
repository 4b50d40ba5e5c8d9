"""chatstack.hardware.score_labelled_positions_on_cpu: TRL's fused LM head, on a CPU, scores only
the labelled positions and gives the same loss and gradients as TRL's own choice (every position)."""
from __future__ import annotations

import torch
import trl.trainer.utils as trl_utils
from transformers import GPT2Config, GPT2LMHeadModel
from trl.trainer.utils import add_fused_lm_head

from chatstack.hardware import score_labelled_positions_on_cpu


def _batch():
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 64, (3, 12), generator=g)
    mask = torch.ones_like(ids)
    mask[1, 8:] = 0  # a padded row
    labels = ids.clone()
    labels[:, :5] = -100  # the prompt: unlabelled
    labels[mask == 0] = -100
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def _loss_and_grads(model, batch):
    model.zero_grad()
    out = model(**batch, fused_lm_head=True)
    out.loss.backward()
    return float(out.loss), {n: p.grad.clone() for n, p in model.named_parameters()}, out


def test_labelled_positions_only_same_loss_and_grads(monkeypatch):
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=64, n_positions=16, n_embd=32, n_layer=2, n_head=2,
                                       resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0))
    add_fused_lm_head(model, outputs=("log_probs", "entropy", "is_top1"))
    batch = _batch()
    scored = []
    apply = trl_utils._ChunkedLogProbFunction.apply

    def spy(hidden, *args):
        scored.append(hidden.shape[0])
        return apply(hidden, *args)

    monkeypatch.setattr(trl_utils._ChunkedLogProbFunction, "apply", spy)
    current = trl_utils._use_triton  # an earlier stage in this process may have switched it on already
    original = getattr(current, "original", current)
    monkeypatch.setattr(trl_utils, "_use_triton", original)  # TRL's own choice; undone after the test
    every_loss, every_grads, every_out = _loss_and_grads(model, batch)
    assert score_labelled_positions_on_cpu()
    assert score_labelled_positions_on_cpu()  # a second call keeps one wrapper
    assert trl_utils._use_triton.original is original
    labelled_loss, labelled_grads, labelled_out = _loss_and_grads(model, batch)

    n_labelled = int((batch["labels"][:, 1:] != -100).sum())
    assert scored == [3 * 11, n_labelled] and n_labelled < 3 * 11
    assert abs(every_loss - labelled_loss) < 1e-6
    for name, grad in every_grads.items():
        torch.testing.assert_close(labelled_grads[name], grad, rtol=1e-5, atol=1e-6, msg=name)
    torch.testing.assert_close(labelled_out.entropy, every_out.entropy)
    assert torch.equal(labelled_out.is_top1, every_out.is_top1)
