"""A tiny GPT-2 + byte-level BPE tokenizer with the chat template, saved as a
`save_pretrained` folder, for the export / hub / lm-eval tests. Built from config in
about a second; nothing is downloaded.

The tokenizer follows chatstack's conventions (GPT-4 split regex, <|endoftext|> as BOS,
<|im_end|> as EOS, <|pad|> as pad, the ChatML+tools template) but is built here so these
tests do not depend on the tokenizer stage's code.
"""
from __future__ import annotations

import random
from importlib import resources
from pathlib import Path

GPT4_SPLIT = (r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]++[\r\n]*|\s*[\r\n]|"""
              r"""\s+(?!\S)|\s+""")
SPECIALS = ["<|endoftext|>", "<|pad|>", "<|im_start|>", "<|im_end|>"]

_WORDS = ("the a an of to in on at for with and or but is was are were be been has have had "
          "question answer what who where when which how many much number city river people "
          "company born university works lives plus minus times equals one two three four five "
          "science energy water plants sun light food chain cookie oven chef man woman car snow "
          "Ada Lovelace Paris London Berlin Tokyo ocean mountain forest 12 345 6789 2024").split()


def cached_model(name: str, build, *sources: Path) -> Path:
    """A test model built once per machine and version of the files that define it (`sources`
    and this file), in the temp dir; concurrent builders race safely (the first rename wins)."""
    import hashlib
    import os
    import shutil
    import tempfile

    key = hashlib.sha1(b"".join(Path(f).read_bytes() for f in (*sources, Path(__file__))))
    out = Path(tempfile.gettempdir()) / f"chatstack-{name}-{key.hexdigest()[:12]}"
    if not (out / "model.safetensors").is_file():
        tmp = out.with_name(out.name + f".{os.getpid()}")
        build(tmp)
        try:
            tmp.rename(out)
        except OSError:  # another process finished first
            shutil.rmtree(tmp, ignore_errors=True)
    return out


def fit(model, enc: dict, labels, steps: int, lr: float):
    """Full-batch AdamW for a few seconds: the test models learn one behaviour by heart."""
    import torch
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train()
    for _ in range(steps):
        model(**enc, labels=labels).loss.backward()
        opt.step()
        opt.zero_grad()
    model.eval()
    return model


def corpus(n_sentences: int = 400, seed: int = 0) -> list[str]:
    """A few KB of deterministic pseudo-English, with digits, punctuation and newlines."""
    rng = random.Random(seed)
    out = []
    for _ in range(n_sentences):
        words = [rng.choice(_WORDS) for _ in range(rng.randint(4, 14))]
        s = " ".join(words).capitalize() + rng.choice([".", "?", "!", ",", ":"])
        if rng.random() < 0.2:
            s = f"Question: {s}\nAnswer: {rng.choice(_WORDS)}"
        out.append(s)
    return out


def chat_template() -> str:
    return resources.files("chatstack.templates").joinpath("chatml_tools.jinja").read_text()


def build_tokenizer(vocab_size: int = 512):
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(GPT4_SPLIT), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=2, show_progress=False, special_tokens=SPECIALS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(corpus(), trainer=trainer)
    hf = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|endoftext|>", eos_token="<|im_end|>",
                                 pad_token="<|pad|>", additional_special_tokens=["<|im_start|>"],
                                 model_max_length=128, clean_up_tokenization_spaces=False)
    hf.chat_template = chat_template()
    return hf


def build_tiny_model(out_dir: str | Path, seed: int = 0, n_positions: int = 128, train_steps: int = 0) -> Path:
    """Save a 2-layer 64-dim GPT-2 and its tokenizer to `out_dir`; returns the path.

    `train_steps` > 0 fits it a little on `corpus()` so its logits are not near-uniform
    (more telling for logit comparisons); 0 keeps the random init.
    """
    import torch
    from transformers import GenerationConfig, GPT2Config, GPT2LMHeadModel

    out = Path(out_dir)
    tok = build_tokenizer()
    torch.manual_seed(seed)
    cfg = GPT2Config(n_layer=2, n_embd=64, n_head=2, n_positions=n_positions, vocab_size=len(tok),
                     bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                     tie_word_embeddings=True)
    model = GPT2LMHeadModel(cfg)
    if train_steps:
        ids = tok("\n".join(corpus()), add_special_tokens=False)["input_ids"]
        data = torch.tensor(ids[: (len(ids) // 64) * 64]).view(-1, 64)
        opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
        g = torch.Generator().manual_seed(seed)
        model.train()
        for _ in range(train_steps):
            batch = data[torch.randint(len(data), (16,), generator=g)]
            loss = model(input_ids=batch, labels=batch).loss
            loss.backward()
            opt.step()
            opt.zero_grad()
        model.eval()
    model.generation_config = GenerationConfig(bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                                               pad_token_id=tok.pad_token_id, max_new_tokens=32)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out
