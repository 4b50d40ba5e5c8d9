import json

import pytest

from chatstack.data import load_data
from chatstack.errors import DataError


def test_local_jsonl_and_columns(tmp_path):
    f = tmp_path / "d.jsonl"
    f.write_text("\n".join(json.dumps({"text": f"doc {i}", "x": i}) for i in range(10)))
    ds = load_data({"files": str(f), "columns": ["text"]})
    assert ds.column_names == ["text"] and len(ds) == 10


def test_malformed_jsonl_line_is_named(tmp_path):
    f = tmp_path / "bad.jsonl"
    f.write_text('{"text": "ok"}\n{"text": broken}\n')
    with pytest.raises(DataError, match=r"bad.jsonl:2"):
        load_data({"files": str(f)})


def test_missing_column_and_unknown_key(tmp_path):
    f = tmp_path / "d.jsonl"
    f.write_text('{"text": "a"}\n')
    with pytest.raises(DataError, match="missing column"):
        load_data({"files": str(f), "columns": ["messages"]})
    with pytest.raises(DataError, match="unknown key"):
        load_data({"files": str(f), "colums": ["text"]})


def test_unknown_builder_and_name():
    with pytest.raises(DataError, match="unknown builder"):
        load_data({"builder": "nope"})
    with pytest.raises(DataError, match="no dataset config named"):
        load_data("no_such_dataset")


def test_mixture_weights_and_test_split(tmp_path):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    a.write_text("\n".join(json.dumps({"text": f"a{i}"}) for i in range(100)))
    b.write_text("\n".join(json.dumps({"text": f"b{i}", "extra": 1}) for i in range(10)))
    ds = load_data({"mixture": [{"files": str(a), "weight": 0.5}, {"files": str(b), "weight": 2.0}], "test_size": 0.1})
    rows = list(ds["train"]["text"]) + list(ds["test"]["text"])
    assert sum(t.startswith("a") for t in rows) == 50 and sum(t.startswith("b") for t in rows) == 20
    assert ds["train"].column_names == ["text"]


def test_named_config_with_builder():
    ds = load_data("tiny_sft")
    assert "messages" in ds.column_names and len(ds) > 100
    roles = {m["role"] for row in ds.select(range(20)) for m in row["messages"]}
    assert {"user", "assistant"} <= roles <= {"system", "user", "assistant"}


def test_glob_of_shards_and_empty_file(tmp_path):
    for i in range(3):
        (tmp_path / f"shard-{i}.jsonl").write_text("".join(json.dumps({"text": f"{i}-{j}"}) + "\n" for j in range(4)))
    ds = load_data({"files": [str(tmp_path / "shard-*.jsonl")]})
    assert len(ds) == 12 and sorted(ds["text"])[0] == "0-0"
    with pytest.raises(DataError, match="no data file matches"):
        load_data({"files": str(tmp_path / "nothing-*.jsonl")})
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(DataError, match="empty.jsonl holds no rows"):
        load_data({"files": str(tmp_path / "empty.jsonl")})


def test_mixture_of_chats_with_and_without_tool_calls():
    """Tool-call chats (with a `tools` column) mix with plain chats: features are widened and
    the plain rows are offered no tools; the chat template renders both."""
    mixed = load_data({"mixture": [
        {"builder": "tool_conversations", "args": {"world": "tiny", "n": 10, "workers": 1}},
        {"builder": "identity", "args": {"name": "Nimbus", "maker": "Cloudworks Lab", "n": 10}}]})
    assert {"messages", "tools"} <= set(mixed.column_names) and len(mixed) == 20
    tools = [json.loads(t) for t in mixed["tools"]]
    assert sum(t is None for t in tools) == 10 and all(isinstance(t, list) for t in tools if t is not None)
    with_calls = [r for r in mixed["messages"] if any(m.get("tool_calls") for m in r)]
    assert with_calls and with_calls[0][1]["tool_calls"][0]["function"]["name"] in ("search", "python")


def test_load_splits_one_convention_for_every_stage(tmp_path):
    """The spec's own test split if it has one; else a fraction held out with the stage's seed;
    else none. An eval-only dataset gives its test split, else all of it."""
    from chatstack.data import load_eval_split, load_splits
    f = tmp_path / "d.jsonl"
    f.write_text("\n".join(json.dumps({"text": f"doc {i}"}) for i in range(40)))
    own = {"files": str(f), "test_size": 0.25, "seed": 1}
    train, test = load_splits(own, seed=7, test_size=0.5)  # the spec's split wins over the stage's fraction
    expected = load_data(own)
    assert train["text"] == expected["train"]["text"] and test["text"] == expected["test"]["text"] and len(test) == 10
    train, test = load_splits({"files": str(f)}, seed=7, test_size=0.1)
    expected = load_data({"files": str(f)}).train_test_split(test_size=0.1, seed=7)
    assert train["text"] == expected["train"]["text"] and test["text"] == expected["test"]["text"]
    train, test = load_splits({"files": str(f)}, seed=7)
    assert test is None and len(train) == 40
    assert load_eval_split(own)["text"] == load_data(own)["test"]["text"]
    assert len(load_eval_split({"files": str(f)})) == 40


def test_system_prompt_on_a_share_of_a_mixture_part():
    """`system_prompt` prepends the system message to the chosen share of one part's chats (never
    twice, never to a chat that has its own) and a malformed value is named before any loading."""
    prompt = "You can use the tools search and python."
    part = {"builder": "identity", "args": {"name": "Nimbus", "maker": "Cloudworks Lab", "n": 200, "system_prompt": 0.1}}
    plain = load_data(part)
    mixed = load_data({"mixture": [{**part, "system_prompt": {"content": prompt, "share": 0.5}},
                                   {"builder": "identity", "args": {"name": "Nimbus", "maker": "Cloudworks Lab", "n": 50,
                                                                    "seed": 3, "system_prompt": 0.0}}]})
    firsts = [m[0] for m in mixed["messages"]]
    ours = sum(m["role"] == "system" and m["content"] == prompt for m in firsts)
    own = sum(m[0]["role"] == "system" for m in plain["messages"])
    assert 60 < ours < 140 and sum(m["role"] == "system" for m in firsts) <= ours + own
    assert all(sum(x["role"] == "system" for x in m) <= 1 for m in mixed["messages"])
    assert load_data({**part, "system_prompt": {"content": prompt}})["messages"][0][0]["content"] in (prompt, *[
        m[0]["content"] for m in plain["messages"] if m[0]["role"] == "system"])
    from chatstack.data.loading import check_spec
    with pytest.raises(DataError, match="system_prompt must be"):
        check_spec({**part, "system_prompt": {"content": prompt, "share": 2}})
    with pytest.raises(DataError, match="needs a `messages` column"):
        load_data({"builder": "world_pretraining", "args": {"world": "tiny"}, "system_prompt": {"content": prompt}})
