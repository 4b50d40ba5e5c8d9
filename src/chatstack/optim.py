"""Muon for the weight matrices of the transformer blocks, AdamW for everything else, as
modded-nanogpt trains GPT-2 (`optimizer: muon` in the pretrain stage).

`torch.optim.Muon` takes 2-D parameters only and is meant for hidden layers; the embeddings
(wte, wpe; GPT-2's LM head is wte), layer norms and biases stay with the stage's `optim`
(AdamW). The Trainer builds it through transformers' optimizer factories
(`Trainer(optimizer_cls_and_kwargs=(MuonFactory, kwargs))`), whose LR scheduler, gradient
clipping and checkpoints then see one optimizer (`MuonWithAdamW`).

GPT-2's Conv1D stores its weight as (in, out), nn.Linear as (out, in). Muon's Newton-Schulz
orthogonalisation works on either (it transposes a tall matrix and back, and orthogonalising
the transpose gives the transpose), but its default learning-rate scale, Keller Jordan's
sqrt(max(1, fan_out / fan_in)), reads shape[0] / shape[1] as if every weight were nn.Linear's:
on Conv1D it would boost the MLP's down projection instead of c_attn and c_fc.
`muon_lr_scale` gives each Conv1D weight the scale of its own fan-out.

torch's Muon orthogonalises in bf16. A CPU without native bf16 (AVX2) emulates it, many times
slower (README, "Learning per CPU minute"); there the same iteration runs in fp32 (`fp32_newton_schulz`).
"""
from __future__ import annotations

import math
from collections import defaultdict
from contextlib import contextmanager, nullcontext

import torch
from torch import nn
from transformers import Trainer
from transformers.pytorch_utils import Conv1D

from chatstack.hardware import cpu_has_fast_bf16

MUON_ADJUST_LR = ("original", "match_rms_adamw")  # torch.optim.Muon's adjust_lr_fn


def split_parameters(model: nn.Module) -> tuple[dict[str, nn.Parameter], dict[str, nn.Parameter]]:
    """(Muon's, AdamW's) trainable parameters by name, each once (a tied LM head is wte): the 2-D
    weights of the blocks go to Muon; embeddings, the LM head, norms and biases to AdamW."""
    embeddings = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if head is not None:
        embeddings.add(id(head.weight))
    muon, adamw = {}, {}
    for name, p in model.named_parameters():  # named_parameters() lists a tied parameter once
        if p.requires_grad:
            (muon if p.ndim == 2 and id(p) not in embeddings else adamw)[name] = p
    return muon, adamw


def muon_lr_scale(module: nn.Module, shape: torch.Size, adjust_lr_fn: str) -> float:
    """The factor that makes torch's "original" shape scale read a Conv1D weight (in, out) by its
    own fan-out, as it reads nn.Linear's (out, in); 1 for the symmetric "match_rms_adamw"."""
    if adjust_lr_fn != "original" or not isinstance(module, Conv1D):
        return 1.0
    fan_in, fan_out = shape
    return math.sqrt(max(1.0, fan_out / fan_in)) / math.sqrt(max(1.0, fan_in / fan_out))


def orthogonalize_fp32(grad: torch.Tensor, ns_coefficients, ns_steps: int, eps: float) -> torch.Tensor:
    """torch.optim._muon._zeropower_via_newtonschulz, the same quintic iteration, in fp32."""
    a, b, c = ns_coefficients
    x = grad.float()
    tall = grad.size(0) > grad.size(1)
    x = x.T if tall else x
    x = x / x.norm().clamp(min=eps)
    for _ in range(ns_steps):
        gram = x @ x.T
        x = torch.addmm(x, torch.addmm(gram, gram, gram, beta=b, alpha=c), x, beta=a)
    return x.T if tall else x


@contextmanager
def fp32_newton_schulz():
    """Muon steps inside orthogonalise in fp32 (torch's step looks its bf16 iteration up at call time)."""
    from torch.optim import _muon
    original = _muon._zeropower_via_newtonschulz
    _muon._zeropower_via_newtonschulz = orthogonalize_fp32
    try:
        yield
    finally:
        _muon._zeropower_via_newtonschulz = original


class MuonWithAdamW(torch.optim.Optimizer):
    """AdamW and Muon stepped, saved and loaded as one optimizer. The Trainer, accelerate and the
    LR scheduler take exactly one torch Optimizer and torch has no way to chain two: this one holds
    both optimizers' param groups (the same dicts, so the scheduler's lr reaches both), AdamW's
    first (the Trainer logs group 0's lr: the stage's `learning_rate`). `fp32`: orthogonalise in
    fp32 (where bf16 is emulated)."""

    def __init__(self, adamw: torch.optim.Optimizer, muon: torch.optim.Muon, fp32: bool = False):
        self.optimizers, self.fp32 = (adamw, muon), fp32
        super().__init__([g for o in self.optimizers for g in o.param_groups], {})
        self._link()

    def _link(self) -> None:
        """Point at the inner optimizers' groups (their load_state_dict makes new ones)."""
        self.param_groups = [g for o in self.optimizers for g in o.param_groups]

    @property
    def state(self) -> dict:
        """Both optimizers' per-parameter state, to read (each steps, saves and loads its own)."""
        return {**self.optimizers[0].state, **self.optimizers[1].state}

    @state.setter
    def state(self, value) -> None:  # Optimizer.__init__ sets an empty one: the state lives in the inner two
        pass

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        self.optimizers[0].step()
        with fp32_newton_schulz() if self.fp32 else nullcontext():
            self.optimizers[1].step()
        return loss

    def state_dict(self) -> dict:
        return {"adamw": self.optimizers[0].state_dict(), "muon": self.optimizers[1].state_dict()}

    def load_state_dict(self, state_dict: dict) -> None:
        self.optimizers[0].load_state_dict(state_dict["adamw"])
        self.optimizers[1].load_state_dict(state_dict["muon"])
        self._link()


def muon_with_adamw(model: nn.Module, args) -> MuonWithAdamW:
    """The optimizer of `optimizer: muon`: the stage's `optim` (AdamW, its lr, betas and weight
    decay on the embeddings, none on norms and biases) and torch.optim.Muon (muon_* settings)."""
    muon_params, adamw_params = split_parameters(model)
    adamw_cls, adamw_kwargs = Trainer.get_optimizer_cls_and_kwargs(args, model)
    adamw = adamw_cls([{"params": [p for p in adamw_params.values() if p.ndim >= 2], "weight_decay": args.weight_decay},
                       {"params": [p for p in adamw_params.values() if p.ndim < 2], "weight_decay": 0.0}],
                      **adamw_kwargs)
    modules = dict(model.named_modules())
    by_scale: dict[float, list] = defaultdict(list)
    for name, p in muon_params.items():
        by_scale[muon_lr_scale(modules[name.rpartition(".")[0]], p.shape, args.muon_adjust_lr_fn)].append(p)
    muon = torch.optim.Muon([{"params": ps, "lr": args.muon_learning_rate * s} for s, ps in sorted(by_scale.items())],
                            lr=args.muon_learning_rate, momentum=args.muon_momentum, nesterov=args.muon_nesterov,
                            weight_decay=args.muon_weight_decay, adjust_lr_fn=args.muon_adjust_lr_fn)
    on_cpu = any(p.device.type == "cpu" for p in muon_params.values())
    return MuonWithAdamW(adamw, muon, fp32=on_cpu and not cpu_has_fast_bf16())


class MuonFactory:
    """transformers' optimizer factory protocol: the Trainer calls `MuonFactory()(model, **kwargs)`."""

    def __call__(self, model: nn.Module, args) -> MuonWithAdamW:
        return muon_with_adamw(model, args)
