"""GGUF export: metadata follows llama.cpp's gpt2 conventions, and the file read back by an
independent reader (transformers' GGUF loader) gives the original's logits and tokens."""
from __future__ import annotations

import json

import numpy as np
import pytest
from helpers_tiny_model import build_tiny_model

gguf = pytest.importorskip("gguf")

from chatstack.export import ExportError, detect_tokenizer_pre, export_gguf, main, verify_gguf  # noqa: E402

# max |logit difference| against the original; f32 is the acceptance bar of the issue
TOLERANCE = {"f32": 1e-3, "f16": 2e-2, "q8_0": 1e-1}
PROMPTS = ["The capital of France is", "Question: What is 12 plus 345?\nAnswer: 357",
           "<|im_start|>user\nWho was Ada Lovelace?<|im_end|>\n<|im_start|>assistant\n"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    # a few training steps so logits are spread out, not near-uniform as at init
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model", train_steps=40)


@pytest.fixture(scope="module")
def exported(model_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("gguf")
    return {d: export_gguf(model_dir, out / f"tiny-{d}.gguf", d, quiet=True) for d in TOLERANCE}


@pytest.mark.parametrize("dtype", list(TOLERANCE))
def test_round_trip_logits(model_dir, exported, dtype):
    r = verify_gguf(model_dir, exported[dtype], PROMPTS)
    print(dtype, json.dumps(r))
    assert r["max_abs_logit_diff"] < TOLERANCE[dtype]
    assert r["top1_agreement"] >= (1.0 if dtype != "q8_0" else 0.9)
    assert r["same_token_ids"] and r["chat_template_kept"]


def test_sizes_shrink_with_dtype(exported):
    sizes = [exported[d].stat().st_size for d in ("f32", "f16", "q8_0")]
    assert sizes[0] > sizes[1] > sizes[2]


def test_metadata_follows_llama_cpp(model_dir, exported):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    r = gguf.GGUFReader(str(exported["q8_0"]))
    f = lambda k: r.get_field(k).contents()  # noqa: E731
    assert f("general.architecture") == "gpt2"
    assert f("gpt2.block_count") == 2 and f("gpt2.embedding_length") == 64 and f("gpt2.context_length") == 128
    assert f("gpt2.attention.head_count") == 2 and f("gpt2.feed_forward_length") == 256
    assert f("general.file_type") == gguf.LlamaFileType.MOSTLY_Q8_0
    assert f("tokenizer.ggml.model") == "gpt2" and f("tokenizer.ggml.pre") == "llama-bpe"
    tokens, types = f("tokenizer.ggml.tokens"), f("tokenizer.ggml.token_type")
    assert len(tokens) == len(tok) and tokens == [tok.convert_ids_to_tokens(i) for i in range(len(tok))]
    for special in ("<|endoftext|>", "<|pad|>", "<|im_start|>", "<|im_end|>"):
        assert types[tokens.index(special)] == gguf.TokenType.CONTROL
    assert types[tokens.index("a")] == gguf.TokenType.NORMAL
    merges = json.loads((model_dir / "tokenizer.json").read_text())["model"]["merges"]
    assert f("tokenizer.ggml.merges") == [" ".join(m) for m in merges]
    assert f("tokenizer.ggml.bos_token_id") == tok.bos_token_id
    assert f("tokenizer.ggml.eos_token_id") == tok.convert_tokens_to_ids("<|im_end|>")
    assert f("tokenizer.ggml.padding_token_id") == tok.pad_token_id
    assert f("tokenizer.ggml.add_bos_token") is False and f("tokenizer.ggml.add_eos_token") is False
    assert f("tokenizer.chat_template") == tok.chat_template
    types_by_name = {t.name: t.tensor_type for t in r.tensors}
    assert {"token_embd.weight", "position_embd.weight", "output.weight", "output_norm.weight",
            "blk.1.attn_qkv.weight", "blk.1.ffn_down.weight"} <= set(types_by_name)
    Q = gguf.GGMLQuantizationType
    assert types_by_name["blk.0.attn_qkv.weight"] == Q.Q8_0 and types_by_name["blk.0.attn_qkv.bias"] == Q.F32
    assert types_by_name["position_embd.weight"] == Q.F32 and types_by_name["output_norm.weight"] == Q.F32


def test_gguf_tokenizer_splits_like_the_original(model_dir, exported):
    """`tokenizer.ggml.pre = llama-bpe` must reproduce chatstack's GPT-4 split regex."""
    from transformers import AutoTokenizer

    ref = AutoTokenizer.from_pretrained(model_dir)
    path = exported["f16"]
    got = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    text = ("Hello  world!! 1234567 café 🙂\n\n\tdef f(x): return x  \r\n I'm sure you'LL see; 3.14159 "
            "<|im_start|>user\nhi<|im_end|>\n")
    assert got(text)["input_ids"] == ref(text)["input_ids"]
    assert got.decode(ref(text)["input_ids"]) == text


def test_cli_writes_default_path(model_dir, capsys):
    assert main(["--model", str(model_dir), "--format", "gguf", "--dtype", "q8_0"]) == 0
    out = model_dir / f"{model_dir.name}-q8_0.gguf"
    assert out.is_file() and str(out) in capsys.readouterr().out
    assert not out.with_name(out.name + ".partial").exists()  # written aside, renamed when complete
    out.unlink()


def test_refuses_what_llama_cpp_cannot_run(model_dir, tmp_path):
    import shutil

    bad = tmp_path / "relu"
    shutil.copytree(model_dir, bad)
    cfg = json.loads((bad / "config.json").read_text())
    cfg["activation_function"] = "relu"
    (bad / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ExportError, match="activation_function"):
        export_gguf(bad, tmp_path / "x.gguf", "f32", quiet=True)
    assert main(["--model", str(bad), "--dtype", "f32", "--output", str(tmp_path / "x.gguf")]) == 2
    assert main(["--model", str(tmp_path / "nothing"), "--dtype", "f32"]) == 2


def test_detect_tokenizer_pre():
    split = lambda rx: {"pre_tokenizer": {"type": "Sequence", "pretokenizers": [  # noqa: E731
        {"type": "Split", "pattern": {"Regex": rx}}, {"type": "ByteLevel", "use_regex": False}]}}
    from chatstack.export import GPT4_SPLIT, QWEN2_SPLIT
    from chatstack.tokenizer import split_regex

    assert detect_tokenizer_pre(split(GPT4_SPLIT)) == "llama-bpe"
    assert detect_tokenizer_pre(split(split_regex(1))) == "qwen2"  # a token per digit, as Qwen2 splits
    assert detect_tokenizer_pre(split(QWEN2_SPLIT)) == "qwen2"
    assert detect_tokenizer_pre({"pre_tokenizer": {"type": "ByteLevel", "use_regex": True}}) == "gpt2"
    with pytest.raises(ExportError, match="--tokenizer-pre"):
        detect_tokenizer_pre(split(r"\w+"))
    with pytest.raises(ExportError, match="--tokenizer-pre"):  # " 3" one piece: no llama.cpp split does that
        detect_tokenizer_pre(split(split_regex(3, number_space=True)))


def test_q8_0_matches_gguf_dequantize(model_dir, exported):
    """The quantized blocks decode (with gguf's own dequantizer) to within about half a Q8_0 step (the scale is f16)."""
    from safetensors.numpy import load_file

    r = gguf.GGUFReader(str(exported["q8_0"]))
    t = next(t for t in r.tensors if t.name == "token_embd.weight")
    deq = gguf.quants.dequantize(t.data, t.tensor_type)
    orig = load_file(str(model_dir / "model.safetensors"))["transformer.wte.weight"]
    step = np.abs(orig).reshape(-1, 32).max(-1) / 127
    assert (np.abs(deq - orig).reshape(-1, 32) <= step[:, None] * 0.6 + 1e-7).all()


def test_llama_cpp_runs_the_file(model_dir, exported):
    """llama.cpp itself (llama-cpp-python, in the dev extras) tokenizes like the original and
    gives close logits (f32, in-process)."""
    llama_cpp = pytest.importorskip("llama_cpp")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    ref = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    llm = llama_cpp.Llama(model_path=str(exported["f32"]), n_ctx=128, logits_all=True, verbose=False, n_threads=2)
    for prompt in PROMPTS:
        ids = tok(prompt)["input_ids"]
        assert llm.tokenize(prompt.encode(), add_bos=False, special=True) == ids
        llm.reset()
        llm.eval(ids)
        got = np.array(llm.scores[: len(ids)])
        with torch.no_grad():
            want = ref(torch.tensor([ids])).logits[0].numpy()
        # llama.cpp's f16 KV cache and f16 GELU table: about 1e-3 relative to the logits' scale
        assert np.abs(got - want).max() < 1e-2 * max(1.0, np.abs(want).max())


CHATS = ["Who was Ada Lovelace?", "What is 12 plus 345?", "Where is Paris?", "Tell me about the ocean.",
         "How many people live in Tokyo?", "Hello!"]
NEW_TOKENS = 16
# llama.cpp in a child process: a crash inside it (as llama.cpp's AMX Q8_0 kernels segfault, see
# README "Export") fails this test with its exit status instead of killing pytest.
LLAMA_GREEDY = """
import json, sys
import llama_cpp
path, prompts, n = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3])
llm = llama_cpp.Llama(model_path=path, n_ctx=128, verbose=False, n_threads=2)
out = []
for p in prompts:
    ids = llm.tokenize(p.encode(), add_bos=False, special=True)
    llm.reset()
    gen = []
    for t in llm.generate(ids, temp=0.0, top_k=1, repeat_penalty=1.0):
        if t == llm.token_eos() or len(gen) == n:
            break
        gen.append(t)
    out.append({"ids": ids, "new": gen})
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def transformers_greedy(model_dir):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    prompts = [tok.apply_chat_template([{"role": "user", "content": c}], add_generation_prompt=True, tokenize=False)
               for c in CHATS] + PROMPTS[:2]
    rows = []
    for p in prompts:
        ids = tok(p)["input_ids"]
        with torch.no_grad():
            out = model.generate(torch.tensor([ids]), max_new_tokens=NEW_TOKENS, do_sample=False,
                                 eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)[0, len(ids):].tolist()
        rows.append({"prompt": p, "ids": ids, "new": [t for t in out if t != tok.eos_token_id]})
    return tok, rows


@pytest.mark.parametrize("dtype", list(TOLERANCE))
def test_llama_cpp_round_trip(exported, transformers_greedy, dtype):
    """Each exported dtype in llama.cpp: chat-formatted prompts tokenize to the same ids, and
    greedy decoding gives transformers' tokens (all of them for f32/f16, the first 8 on most
    prompts for q8_0, whose rounding may flip a close call)."""
    pytest.importorskip("llama_cpp")
    import subprocess
    import sys

    tok, want = transformers_greedy
    run = subprocess.run([sys.executable, "-c", LLAMA_GREEDY, str(exported[dtype]), json.dumps([r["prompt"] for r in want]),
                          str(NEW_TOKENS)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, f"llama.cpp exited {run.returncode} on the {dtype} file: {run.stderr[-2000:]}"
    got = json.loads(run.stdout.strip().splitlines()[-1])
    assert [g["ids"] for g in got] == [w["ids"] for w in want]
    same = [g["new"] == w["new"] for g, w in zip(got, want)]
    first8 = [g["new"][:8] == w["new"][:8] for g, w in zip(got, want)]
    print(dtype, f"identical {sum(same)}/{len(same)}, first 8 tokens {sum(first8)}/{len(first8)}",
          [tok.decode(g["new"]) for g in got][:3])
    if dtype == "q8_0":
        assert sum(first8) >= 0.75 * len(first8)
    else:
        assert all(same), [(tok.decode(g["new"]), tok.decode(w["new"])) for g, w in zip(got, want)]


def test_padded_vocab_round_trips(model_dir, tmp_path):
    """A model whose embedding has more rows than the tokenizer has tokens (vocab padded to a
    multiple of 64, as at real scale): the extra ids become llama.cpp's unused [PADn] tokens."""
    import shutil

    import torch
    from transformers import AutoModelForCausalLM

    padded = tmp_path / "padded"
    shutil.copytree(model_dir, padded)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    model.resize_token_embeddings(model.config.vocab_size + 12)
    model.save_pretrained(padded)
    f = export_gguf(padded, tmp_path / "padded.gguf", "f32", quiet=True)
    r = gguf.GGUFReader(str(f))
    tokens, types = r.get_field("tokenizer.ggml.tokens").contents(), r.get_field("tokenizer.ggml.token_type").contents()
    assert len(tokens) == model.config.vocab_size and tokens[-1] == f"[PAD{len(tokens) - 1}]"
    assert types[-1] == gguf.TokenType.UNUSED
    assert verify_gguf(padded, f, PROMPTS[:2])["max_abs_logit_diff"] < 1e-3
