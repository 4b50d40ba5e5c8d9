"""A tiny chat model that has learnt to call a tool: the 2-layer GPT-2 of helpers_tiny_model
(its tokenizer plus the <tool_call> tokens), fitted for a few seconds on conversations where

- a user message ending with "Please compute it." gets a python call `print(6 * 7)`, then, after the
  tool's result, the reply ANSWER;
- any other user message gets the reply REPLY, with no call.

Half of the conversations show the python tool's JSON schema in the system prompt (as TRL's
GRPOTrainer renders prompts with `tools=`), half do not (the tiny recipe's format). The
tool-loop and GRPO-with-tools tests use it: the calls are the model's own, not scripted.
Its BPE is trained on these conversations too, so that the schema and the calls are short in
tokens and the fit takes seconds on a busy 2-core CPU."""
from __future__ import annotations

import json
import random
from pathlib import Path

REPLY = "The chef has a cookie in the oven."
ANSWER = "The answer is 42."
CALL = {"type": "function", "function": {"name": "python", "arguments": {"code": "print(6 * 7)"}}}


def tool_model() -> Path:
    """Built once per machine and version of this file and of helpers_tiny_model.py."""
    from helpers_tiny_model import cached_model
    return cached_model("toolparrot", build_tool_model, Path(__file__))


def conversations(rng: random.Random, n: int) -> list[list[dict]]:
    from helpers_tiny_model import corpus

    sentences = corpus(200, seed=7)
    convs = []
    for i in range(n):
        sentence = rng.choice(sentences).rstrip(".?!,:")
        kind = ("compute", "plain")[i % 2]
        msgs = [{"role": "user", "content": sentence + (". Please compute it." if kind == "compute" else "?")}]
        if kind == "compute":
            msgs += [{"role": "assistant", "content": "", "tool_calls": [CALL]},
                     {"role": "tool", "name": "python", "content": "42"},
                     {"role": "assistant", "content": ANSWER}]
        else:
            msgs += [{"role": "assistant", "content": REPLY}]
        convs.append(msgs)
    return convs


def build_tokenizer(texts: list[str]):
    """helpers_tiny_model's tokenizer recipe (GPT-4 split, byte-level BPE, chatstack's special
    tokens and template) plus the tool-call tokens, trained on its corpus and on `texts`."""
    from helpers_tiny_model import GPT4_SPLIT, chat_template, corpus
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<|endoftext|>", "<|pad|>", "<|im_start|>", "<|im_end|>", "<tool_call>", "</tool_call>"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(GPT4_SPLIT), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=768, min_frequency=2, show_progress=False, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(corpus() + texts, trainer=trainer)
    hf = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|endoftext|>", eos_token="<|im_end|>",
                                 pad_token="<|pad|>", additional_special_tokens=specials[2:3] + specials[4:],
                                 model_max_length=512, clean_up_tokenization_spaces=False)
    hf.chat_template = chat_template()
    return hf


def build_tool_model(out_dir: str | Path, steps: int = 160, seed: int = 0) -> Path:
    import torch
    from helpers_tiny_model import fit
    from transformers import GenerationConfig, GPT2Config, GPT2LMHeadModel
    from transformers.utils import get_json_schema

    from chatstack.tools.python_tool import python

    rng = random.Random(seed)
    schemas = [get_json_schema(python)]
    convs = conversations(rng, 16)
    tok = build_tokenizer([json.dumps(schemas)] * 20 + [json.dumps(c) for c in convs] * 5)
    encs = [tok.apply_chat_template(c, tools=schemas if (i // 2) % 2 else None, return_dict=True,
                                    return_assistant_tokens_mask=True) for i, c in enumerate(convs)]
    torch.manual_seed(seed)
    cfg = GPT2Config(n_layer=2, n_embd=64, n_head=2, n_positions=512, vocab_size=len(tok),
                     bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                     tie_word_embeddings=True)
    model = GPT2LMHeadModel(cfg)
    width = max(len(e["input_ids"]) for e in encs)
    ids = torch.full((len(encs), width), tok.pad_token_id)
    labels = torch.full((len(encs), width), -100)
    mask = torch.zeros((len(encs), width), dtype=torch.long)
    for k, e in enumerate(encs):  # loss on the assistant's tokens only, as in SFT
        n = len(e["input_ids"])
        ids[k, :n] = torch.tensor(e["input_ids"])
        mask[k, :n] = 1
        labels[k, :n] = torch.tensor(e["input_ids"]).masked_fill(torch.tensor(e["assistant_masks"]) == 0, -100)
    enc = {"input_ids": ids, "attention_mask": mask}
    fit(model, enc, labels, steps, lr=5e-3)
    out = Path(out_dir)
    model.generation_config = GenerationConfig(bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                                               pad_token_id=tok.pad_token_id, max_new_tokens=48)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out
