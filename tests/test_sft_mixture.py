"""SFT data mixtures (synthetic world + identity + thinking + real conversations, weights, a
test split, multi-turn and system prompts through the chat template) and the conversation
evals the sft stage writes to metrics.json."""
from __future__ import annotations

import collections
from types import SimpleNamespace

import pytest
import yaml

from chatstack.builders.chat_formats import chat_conversations
from chatstack.builders.identity import identity_eval_questions
from chatstack.data.loading import load_data, resolve_spec
from chatstack.errors import DataError
from chatstack.evaluation.conversations import Case, conversation_evals, dataset_builders, generate_turns


@pytest.fixture(scope="module")
def instructions(shared_data):
    path = shared_data / "instructions"
    if not path.is_dir():
        pytest.skip(f"{path} not found")
    return path


@pytest.fixture(scope="module")
def tokenizer():
    from helpers_tiny_model import build_tokenizer
    return build_tokenizer()


def test_real_conversations_through_the_loader(instructions):
    ds = load_data("sft_instructions_local", seed=0)
    assert set(ds) == {"train", "test"} and ds["train"].column_names == ["messages"]
    rows = list(ds["train"]["messages"]) + list(ds["test"]["messages"])
    assert len(rows) == 1000 + 175 + 100  # dolly + self-instruct seed tasks + 0.2 x 500 ShareGPT identity
    lengths = collections.Counter(len(m) for m in rows)
    assert lengths[2] > 1000 and any(n >= 5 for n in lengths)  # single- and multi-turn
    assert sum(m[0]["role"] == "system" for m in rows) == 100
    first = [m for m in rows if "Instruction:" in m[0]["content"] or "### Response" in m[0]["content"]]
    assert not first  # the Alpaca template is stripped from the prompts


def test_formats_and_bad_rows(tmp_path, instructions):
    convs = chat_conversations({"files": str(instructions / "fastchat_dummy_conversation_identity.json")},
                               format="sharegpt", max_rows=3)
    assert [m["role"] for m in convs[0]["messages"]][:2] == ["user", "assistant"]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"conversations": [{"from": "human", "value": "hi"}, {"from": "robot", "value": "beep"}]}\n')
    with pytest.raises(DataError, match="unknown speaker 'robot'"):
        chat_conversations({"files": str(bad)}, format="sharegpt")
    bad.write_text('{"prompt": "hi"}\n')
    with pytest.raises(DataError, match="needs column/key 'response'"):
        chat_conversations({"files": str(bad)}, format="prompt_response")
    bad.write_text('{"messages": [{"role": "assistant", "content": "hi"}]}\n')
    with pytest.raises(DataError, match="expected \\[system\\] user ... assistant"):
        chat_conversations({"files": str(bad)})
    with pytest.raises(DataError, match="format must be one of"):
        chat_conversations({"files": str(bad)}, format="alpaca")


def test_mixture_of_world_identity_thinking_and_real_data(tmp_path, instructions, tokenizer):
    spec = {"mixture": [
        {"builder": "world_conversations", "args": {"world": "tiny", "max_rows": 100}, "weight": 0.5},
        {"builder": "identity", "args": {"name": "Nimbus", "maker": "Cloudworks Lab", "n": 40}, "weight": 2.0},
        {"builder": "thinking", "args": {"n": 60, "variant": "work_first"}, "weight": 1.0},
        {"builder": "chat_conversations", "weight": 0.05,
         "args": {"source": {"files": str(instructions / "llmfoundry_dolly_hhrlhf_train_small.jsonl.gz")},
                  "format": "prompt_response", "system": "You are a helpful assistant."}}],
        "test_size": 0.1, "seed": 1}
    path = tmp_path / "mix.yaml"
    path.write_text(yaml.safe_dump(spec))
    ds = load_data(str(path))
    assert len(ds["train"]) + len(ds["test"]) == 50 + 80 + 60 + 50  # weight = fraction of rows (> 1 repeats)
    assert ds["train"].column_names == ["messages"]
    for messages in list(ds["train"]["messages"])[:80]:
        out = tokenizer.apply_chat_template(messages, return_dict=True, return_assistant_tokens_mask=True)
        masked = tokenizer.decode([t for t, m in zip(out["input_ids"], out["assistant_masks"]) if m])
        assert masked.endswith("<|im_end|>")  # loss on every assistant turn, end-of-turn included
        assert all(m["content"] in masked for m in messages if m["role"] == "assistant")
        assert not any(m["content"] in masked for m in messages if m["role"] in ("user", "system"))
    builders = dataset_builders(str(path))
    assert [b for b, _ in builders] == ["world_conversations", "identity", "thinking", "chat_conversations"]


def test_smoltalk_spec_names_the_hub_dataset():
    spec = resolve_spec("sft_smoltalk")
    assert spec["hub"] == "HuggingFaceTB/smoltalk" and spec["columns"] == ["messages"]
    mix = resolve_spec("sft_smoltalk_mix")
    assert {s.get("hub") for s in mix["mixture"]} >= {"HuggingFaceTB/smoltalk"}
    assert {b for b, _ in dataset_builders("sft_smoltalk_mix")} == {"identity", "thinking"}


def test_generate_turns_tells_a_proper_end_from_a_cut(parrot):
    from helpers_chat_model import REPLY

    from chatstack.engine import Engine
    model, tok = Engine.from_pretrained(str(parrot), device="cpu").pair()
    cases = [Case("format", [{"role": "user", "content": "the water is big"}], 32),
             Case("format", [{"role": "user", "content": "the water is big"}], 3),
             Case("format", [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "a"},
                             {"role": "assistant", "content": REPLY}, {"role": "user", "content": "b"}], 32)]
    generate_turns(model, tok, cases, batch_size=2)
    assert cases[0].reply == REPLY and cases[0].ended
    assert not cases[1].ended and REPLY.startswith(cases[1].reply)
    assert cases[2].reply == REPLY and cases[2].ended


def test_conversation_evals_metrics(parrot, tmp_path):
    from chatstack.engine import Engine
    model, tok = Engine.from_pretrained(str(parrot), device="cpu").pair()
    path = tmp_path / "mix.yaml"
    path.write_text(yaml.safe_dump({"mixture": [
        {"builder": "identity", "args": {"name": "Nimbus", "maker": "Cloudworks Lab", "n": 10}},
        {"builder": "thinking", "args": {"n": 10, "variant": "answer_first", "mix": {"count_letters": 1}}}]}))
    cfg = SimpleNamespace(dataset=str(path), world="tiny", seed=0, eval_thinking=8, eval_format_prompts=8)
    m = conversation_evals(model, tok, cfg)
    # the parrot ends its turns (a multi-turn prompt that fills its 128 positions cannot; it must
    # not cut the others short: a batch shared with it once left every reply one token long)
    n_identity = len(identity_eval_questions("Nimbus", "Cloudworks Lab"))
    assert m["format_compliance"] > 0.8 and m["format_samples"] == 8 + n_identity + 8
    assert m["identity_samples"] == n_identity and m["identity_accuracy"] == 0.0  # ... and never says its name
    assert m["identity_accuracy_second_person"] == m["identity_accuracy_third_person"] == 0.0
    assert m["thinking_samples"] == 8 and m["thinking_variant"] == "answer_first"
    assert m["thinking_accuracy"] == m["thinking_accuracy_count_letters"] == 0.0
    assert m["qa_samples_new_phrasing"] == 8
    assert {s["group"] for s in m["conversation_samples"]} == {"qa", "identity_name", "identity_maker",
                                                                "thinking_count_letters"}
    assert conversation_evals(model, tok, SimpleNamespace(eval_conversations=False)) == {}
    only_identity = conversation_evals(model, tok, SimpleNamespace(eval_identity={"name": "N", "maker": "M"},
                                                                   eval_format_prompts=0))
    assert only_identity["identity_samples"] == n_identity and "thinking_accuracy" not in only_identity


@pytest.fixture(scope="module")
def parrot():
    from helpers_chat_model import parrot_model
    return parrot_model()
