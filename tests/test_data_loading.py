import json

import pytest

from chatstack.data import DataError, load_data


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
    assert roles == {"user", "assistant"}
