"""The tool record (chatstack.tools.record): what a model was trained to call, and how chat,
serve and the evals open it."""
import json

import pytest

from chatstack.errors import ConfigError, DataError
from chatstack.tools import record as rec


def test_write_pins_the_world_seed_and_read_returns_it(tmp_path, monkeypatch):
    monkeypatch.setenv("CHATSTACK_WORLD_SEED", "2")
    written = rec.write_record(tmp_path, "[{name: search, store: 'world:tiny', k: 1}, python]", "Tools here.")
    assert written == {"tools": [{"name": "search", "store": "world:tiny:2", "k": 1}, "python"], "system": "Tools here."}
    assert rec.read_record(tmp_path) == written
    assert rec.read_record(tmp_path / "nothing") is None


def test_a_pinned_store_searches_its_own_world_whatever_the_environment(monkeypatch):
    from chatstack.tools.search_tool import load_store
    from chatstack.world.datasets import get_world

    monkeypatch.setenv("CHATSTACK_WORLD_SEED", "0")
    person = get_world("tiny", seed=2).people[0]
    assert load_store("world:tiny:2").search(person.name, k=1)[0]["title"] == person.name
    with pytest.raises(DataError, match="world:<preset>:<seed>"):
        load_store("world:tiny:two")


def test_unknown_tools_fail_before_training():
    with pytest.raises(ConfigError, match="unknown tool"):
        rec.parse_tools("search,calculator")
    with pytest.raises(ConfigError, match="bad options"):
        rec.parse_tools("[{name: search, results: 3}]")


def test_tools_and_system_precedence(tmp_path):
    rec.write_record(tmp_path, "python", "You can use python.")
    assert rec.tools_and_system(tmp_path) == (["python"], "You can use python.")
    assert rec.tools_and_system(tmp_path, system="Be brief.") == (["python"], "Be brief.")
    assert rec.tools_and_system(tmp_path, tools="search") == ("search", None)
    assert rec.tools_and_system(tmp_path, tools="none") == (None, None)
    assert rec.tools_and_system(tmp_path / "untooled") == (None, None)


def test_carry_copies_once_and_a_broken_record_is_named(tmp_path):
    src, dst = tmp_path / "a", tmp_path / "b"
    rec.write_record(src, "python", None)
    dst.mkdir()
    assert rec.carry_record(src, dst) and not rec.carry_record(src, dst)  # a stage's own record is not overwritten
    (dst / rec.RECORD).write_text("{not json")
    with pytest.raises(DataError, match="chat_tools.json"):
        rec.read_record(dst)
    (dst / rec.RECORD).write_text(json.dumps({"system": "x"}))
    with pytest.raises(DataError, match="expected"):
        rec.read_record(dst)


def test_with_system_keeps_an_existing_system_prompt():
    conv = [{"role": "user", "content": "hi"}]
    assert rec.with_system(conv, "S")[0] == {"role": "system", "content": "S"}
    assert rec.with_system(conv, None) == conv
    own = [{"role": "system", "content": "mine"}, *conv]
    assert rec.with_system(own, "S") == own
