"""`chatstack export --model PATH --format gguf --dtype f32|f16|q8_0 [--output FILE]`.

Writes a GGUF file (the format llama.cpp, LM Studio and Ollama read) for a GPT-2 saved
with `save_pretrained`, with the `gguf` package's GGUFWriter, following the conventions
of llama.cpp's own `convert_hf_to_gguf.py` for `GPT2LMHeadModel`:

- architecture `gpt2`; hyper-parameters `gpt2.block_count`, `.context_length`,
  `.embedding_length`, `.feed_forward_length`, `.attention.head_count`,
  `.attention.layer_norm_epsilon`;
- tensor names from gguf's tensor map (`token_embd`, `position_embd`, `blk.N.attn_qkv`,
  ...); GPT-2's Conv1D weights are transposed to the Linear layout; `output.weight` is
  written even when tied to the embedding, as llama.cpp's GPT-2 converter does;
- 1-D tensors, norms, biases and the position embedding stay F32; the other matrices are
  F32, F16 or Q8_0 (with F16 where a row is not a multiple of the Q8_0 block);
- tokenizer: `tokenizer.ggml.model = gpt2` (byte-level BPE), the tokens in vocabulary
  order, their types (normal / control / user-defined / unused), the merges, the special
  token ids (bos, eos, pad) and the add-bos/eos flags through gguf's SpecialVocab, and the
  chat template (`tokenizer.chat_template`);
- `tokenizer.ggml.pre` names the pre-tokenizer (split regex) llama.cpp must use: it is
  read off tokenizer.json (chatstack's GPT-4 split is llama.cpp's `llama-bpe`), or given
  with `--tokenizer-pre` for a regex chatstack does not recognise.

The round trip is checked by `verify_gguf` (and tests/test_export.py): transformers
reads the file back on its own (`from_pretrained(dir, gguf_file=...)`) and its logits
are compared with the original's.
"""
from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from chatstack.errors import ExportError
from chatstack.tokenizer import GPT4_SPLIT, split_regex

DTYPES = ("f32", "f16", "q8_0")

# tokenizer.json split regex -> llama.cpp pre-tokenizer name. The GPT-4 (cl100k) split
# chatstack trains with is, up to notation, the Llama-3 one llama.cpp calls "llama-bpe"; with a
# token per digit (tokenizer max_digits: 1) it is Qwen2's.
LLAMA3_SPLIT = (r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+""")  # noqa: E501
QWEN2_SPLIT = (r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+""")  # noqa: E501
KNOWN_SPLITS = {GPT4_SPLIT: "llama-bpe", LLAMA3_SPLIT: "llama-bpe", QWEN2_SPLIT: "qwen2", split_regex(1): "qwen2"}
# activations llama.cpp's gpt2 graph computes (GELU, tanh approximation)
GELU_TANH = ("gelu_new", "gelu_pytorch_tanh", "gelu_fast")


def detect_tokenizer_pre(tokenizer_json: dict) -> str:
    """llama.cpp's name for the pre-tokenizer of a byte-level BPE tokenizer.json."""
    pre = tokenizer_json.get("pre_tokenizer") or {}
    parts = pre.get("pretokenizers", [pre]) if pre.get("type") == "Sequence" else [pre]
    kinds = [p.get("type") for p in parts]
    if kinds == ["ByteLevel"] and parts[0].get("use_regex", True):
        return "gpt2"  # the original GPT-2 regex, inside ByteLevel
    if kinds == ["Split", "ByteLevel"] and not parts[1].get("use_regex", True):
        regex = parts[0].get("pattern", {}).get("Regex")
        if regex in KNOWN_SPLITS:
            return KNOWN_SPLITS[regex]
        raise ExportError(f"tokenizer.json: split regex {regex!r} is not one chatstack maps to a llama.cpp "
                          f"pre-tokenizer; pass --tokenizer-pre NAME (a name llama.cpp knows, e.g. llama-bpe, qwen2, gpt2)")
    raise ExportError(f"tokenizer.json: pre_tokenizer {kinds} is not a byte-level BPE split chatstack knows; "
                      f"pass --tokenizer-pre NAME")


def check_gpt2(config) -> None:
    """What llama.cpp's gpt2 graph can run; anything else would export silently wrong."""
    if config.model_type != "gpt2":
        raise ExportError(f"config.json: model_type '{config.model_type}'; GGUF export supports GPT-2 only")
    if config.activation_function not in GELU_TANH:
        raise ExportError(f"config.json: activation_function '{config.activation_function}'; llama.cpp's gpt2 uses "
                          f"tanh-GELU ({', '.join(GELU_TANH)})")
    if not config.scale_attn_weights or config.scale_attn_by_inverse_layer_idx:
        raise ExportError("config.json: scale_attn_weights must be true and scale_attn_by_inverse_layer_idx false "
                          "(llama.cpp scales attention by 1/sqrt(head_dim))")


def vocab_for_gguf(tokenizer, n_vocab: int):
    """Tokens in id order and their llama.cpp types, as convert_hf_to_gguf's get_vocab_base."""
    from gguf import TokenType

    vocab = tokenizer.get_vocab()
    if len(vocab) > n_vocab:
        raise ExportError(f"tokenizer has {len(vocab)} tokens but the model's vocab_size is {n_vocab}")
    reverse = {i: t for t, i in vocab.items()}
    added = tokenizer.added_tokens_decoder  # id -> AddedToken
    tokens, types = [], []
    for i in range(n_vocab):
        if i not in reverse:
            tokens.append(f"[PAD{i}]")
            types.append(TokenType.UNUSED)
        elif i in added:
            tokens.append(added[i].content)
            types.append(TokenType.CONTROL if added[i].special else TokenType.USER_DEFINED)
        else:
            tokens.append(reverse[i])
            types.append(TokenType.NORMAL)
    return tokens, types


def qtype_for(name: str, array: np.ndarray, dtype: str):
    """The GGML type of one tensor, following convert_hf_to_gguf's rules."""
    from gguf import GGMLQuantizationType as Q

    if (array.ndim <= 1 or name.endswith("_norm.weight") or not name.endswith(".weight")
            or name.startswith("position_embd")):
        return Q.F32
    if dtype == "f32":
        return Q.F32
    if dtype == "q8_0" and array.shape[-1] % 32 == 0:
        return Q.Q8_0
    return Q.F16


def export_gguf(model_dir: str | Path, output: str | Path | None = None, dtype: str = "f16",
                tokenizer_pre: str | None = None, quiet: bool = False) -> Path:
    """Write `model_dir` (a save_pretrained GPT-2 + tokenizer) as GGUF; returns the file path."""
    import gguf
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    model_dir = Path(model_dir)
    if dtype not in DTYPES:
        raise ExportError(f"--dtype {dtype}: expected one of {', '.join(DTYPES)}")
    if not (model_dir / "config.json").is_file():
        raise ExportError(f"--model {model_dir}: no config.json (expected a save_pretrained folder)")
    tok_file = model_dir / "tokenizer.json"
    if not tok_file.is_file():
        raise ExportError(f"--model {model_dir}: no tokenizer.json (GGUF export needs the fast tokenizer)")
    tokenizer_json = json.loads(tok_file.read_text())
    if tokenizer_json.get("model", {}).get("type") != "BPE":
        raise ExportError(f"{tok_file}: model type '{tokenizer_json.get('model', {}).get('type')}'; expected BPE")
    pre = tokenizer_pre or detect_tokenizer_pre(tokenizer_json)

    config = AutoConfig.from_pretrained(model_dir)
    check_gpt2(config)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    if tokenizer.chat_template is None and not quiet:
        print(f"chatstack export: warning: {model_dir} has no chat template; the GGUF will have none", file=sys.stderr)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    state = {k: v.detach().cpu().float().numpy() for k, v in model.state_dict().items()}
    n_vocab = config.vocab_size

    output = Path(output) if output else model_dir / f"{model_dir.name}-{dtype}.gguf"
    output.parent.mkdir(parents=True, exist_ok=True)
    arch = gguf.MODEL_ARCH.GPT2
    partial = output.with_name(output.name + ".partial")  # renamed once complete: an interrupted export leaves no .gguf
    writer = gguf.GGUFWriter(str(partial), gguf.MODEL_ARCH_NAMES[arch])

    # general + hyper-parameters (set_gguf_parameters of llama.cpp's GPT2Model)
    writer.add_type(gguf.GGUFType.MODEL)
    writer.add_name(model_dir.resolve().name)
    writer.add_block_count(config.n_layer)
    writer.add_context_length(config.n_positions)
    writer.add_embedding_length(config.n_embd)
    writer.add_feed_forward_length(config.n_inner or 4 * config.n_embd)
    writer.add_head_count(config.n_head)
    writer.add_layer_norm_eps(config.layer_norm_epsilon)
    writer.add_vocab_size(n_vocab)
    ftype = {"f32": gguf.LlamaFileType.ALL_F32, "f16": gguf.LlamaFileType.MOSTLY_F16,
             "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0}[dtype]
    writer.add_file_type(ftype)
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)

    # tokenizer (_set_vocab_gpt2): tokens, types, pre; merges + special ids + template via SpecialVocab
    tokens, types = vocab_for_gguf(tokenizer, n_vocab)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(pre)
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    special = gguf.SpecialVocab(model_dir, load_merges=True, n_vocab=n_vocab)
    if not special.merges:
        raise ExportError(f"{tok_file}: no merges found")
    # say explicitly what the HF tokenizer does, so llama.cpp's per-pre defaults do not apply
    probe = tokenizer("a")["input_ids"]
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    special.add_special_token["bos"] = bool(probe) and probe[0] == bos and bos is not None
    special.add_special_token["eos"] = bool(probe) and probe[-1] == eos and eos is not None
    if tokenizer.chat_template and special.chat_template is None:
        special.chat_template = tokenizer.chat_template
    special.add_to_gguf(writer, quiet=True)

    # tensors (modify_tensors of llama.cpp's GPT2Model)
    name_map = gguf.get_tensor_name_map(arch, config.n_layer)
    written = set()
    for hf_name, array in state.items():
        if hf_name.endswith((".attn.bias", ".attn.masked_bias")):
            continue
        if hf_name == "lm_head.weight":
            continue  # written as output.weight from the embedding when tied, below otherwise
        new_name = name_map.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if new_name is None:
            raise ExportError(f"cannot map tensor '{hf_name}' to a GGUF name for gpt2")
        if hf_name.endswith((".c_attn.weight", ".c_proj.weight", ".c_fc.weight")):
            array = array.T  # Conv1D (in, out) -> Linear (out, in)
        _add_tensor(writer, new_name, array, dtype, written)
        if new_name == "token_embd.weight" and config.tie_word_embeddings:
            _add_tensor(writer, "output.weight", array, dtype, written)
    if not config.tie_word_embeddings:
        _add_tensor(writer, "output.weight", state["lm_head.weight"], dtype, written)

    expected = {"token_embd.weight", "position_embd.weight", "output_norm.weight", "output_norm.bias", "output.weight"}
    missing = expected - written
    if missing:
        writer.close()
        partial.unlink(missing_ok=True)
        raise ExportError(f"GGUF would miss tensors {sorted(missing)}")
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file(progress=not quiet)
    writer.close()
    os.replace(partial, output)
    return output


def _add_tensor(writer, name: str, array: np.ndarray, dtype: str, written: set) -> None:
    from gguf import GGMLQuantizationType as Q
    from gguf import quants

    array = np.ascontiguousarray(array, dtype=np.float32)
    qtype = qtype_for(name, array, dtype)
    if qtype == Q.F32:
        writer.add_tensor(name, array)
    elif qtype == Q.F16:
        writer.add_tensor(name, array.astype(np.float16))
    else:
        writer.add_tensor(name, quants.quantize(array, qtype), raw_dtype=qtype)
    written.add(name)


def verify_gguf(model_dir: str | Path, gguf_file: str | Path, prompts: list[str] | None = None) -> dict:
    """Load the GGUF back with transformers' own GGUF reader (independent of the writer above)
    and compare its logits and tokenization with the original model's on fixed prompts."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    prompts = prompts or ["The capital of France is", "Question: What is 12 plus 345?\nAnswer:",
                          "<|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\n"]
    gguf_file = Path(gguf_file)
    ref_tok = AutoTokenizer.from_pretrained(model_dir)
    ref = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    got_tok = AutoTokenizer.from_pretrained(gguf_file.parent, gguf_file=gguf_file.name)
    # transformers 5.24 maps gpt2.context_length to `n_ctx`, which GPT2Config ignores, so a
    # context other than 1024 would load as a size mismatch: pass n_positions from the file.
    n_ctx = int(_gguf_field(gguf_file, "gpt2.context_length"))
    got = AutoModelForCausalLM.from_pretrained(gguf_file.parent, gguf_file=gguf_file.name, dtype=torch.float32,
                                               n_positions=n_ctx).eval()
    max_diff, top1_agree, n, same_ids = 0.0, 0, 0, True
    with torch.no_grad():
        for p in prompts:
            ids = ref_tok(p, return_tensors="pt")["input_ids"]
            same_ids &= got_tok(p)["input_ids"] == ids[0].tolist()
            a, b = ref(ids).logits[0], got(ids).logits[0]
            max_diff = max(max_diff, (a - b).abs().max().item())
            top1_agree += (a.argmax(-1) == b.argmax(-1)).sum().item()
            n += a.shape[0]
    return {"gguf": str(gguf_file), "bytes": gguf_file.stat().st_size, "max_abs_logit_diff": max_diff,
            "top1_agreement": top1_agree / n, "same_token_ids": bool(same_ids),
            "chat_template_kept": got_tok.chat_template == ref_tok.chat_template}


def _gguf_field(gguf_file, key: str):
    from gguf import GGUFReader

    field = GGUFReader(str(gguf_file)).get_field(key)
    if field is None:
        raise ExportError(f"{gguf_file}: no metadata key {key}")
    return field.contents()


@dataclass
class ExportArgs:
    """Options of `chatstack export`."""
    model: str = field(metadata={"help": "a save_pretrained folder (e.g. outputs/tiny/sft)"})
    format: Literal["gguf"] = "gguf"
    dtype: str = field(default="f16", metadata={"choices": DTYPES})
    output: str | None = field(default=None, metadata={"help": "output file (default: <model>/<name>-<dtype>.gguf)"})
    tokenizer_pre: str | None = field(default=None, metadata={
        "help": "llama.cpp pre-tokenizer name (default: read off tokenizer.json)"})
    verify: bool = field(default=False, metadata={
        "help": "load the file back with transformers and print the max logit difference"})


def main(argv: list[str]) -> int:
    from chatstack.config import parse_cli

    (a,) = parse_cli("chatstack export", "Export a model (GGUF for llama.cpp / LM Studio / Ollama).", (ExportArgs,), argv)
    try:
        out = export_gguf(a.model, a.output, a.dtype, a.tokenizer_pre)
    except ExportError as e:
        print(f"chatstack export: error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB, {a.dtype})")
    if a.verify:
        print(json.dumps(verify_gguf(a.model, out), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
