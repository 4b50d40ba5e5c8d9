"""Bad input gets one clear line before any work (issue 21, first cases): a typo inside the
nested `peft` mapping, a value out of range, an empty mixture; and a JSONL file with a
byte-order mark, CRLF line ends and a blank line is read, not rejected."""
from __future__ import annotations

import json

import pytest

from chatstack.cli import main
from chatstack.data.loading import load_data
from chatstack.errors import ConfigError, DataError


def run(capsys, *argv) -> tuple[int, str]:
    rc = main(list(argv))
    return rc, capsys.readouterr().err.strip()


@pytest.mark.parametrize("argv, expected", [
    (["sft", "--peft", '{"rr": 8}'], "'rr' (did you mean r"),
    (["sft", "--peft", "{r: 8"], "peft: not a JSON mapping"),
    (["sft", "--learning_rate=-1e-3"], "learning_rate must be > 0, got -0.001"),
    (["reward", "--per_device_train_batch_size", "0"], "per_device_train_batch_size must be >= 1, got 0"),
    (["pretrain", "--num_train_epochs", "0"], "num_train_epochs must be > 0"),
])
def test_bad_values_are_one_line_before_any_work(argv, expected, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # nothing to load here: an error after parsing would be a different one
    rc, err = run(capsys, *argv, "--output_dir", str(tmp_path / "out"))
    assert rc == 2 and len(err.splitlines()) <= 2 and expected in err, err
    assert "Traceback" not in err and not (tmp_path / "out" / "metrics.json").exists()


def test_an_output_dir_that_is_a_file(capsys, tmp_path):
    (tmp_path / "out").write_text("keep me")
    rc, err = run(capsys, "reward", "--output_dir", str(tmp_path / "out"))
    assert rc == 2 and "is a file, not a folder" in err and (tmp_path / "out").read_text() == "keep me"


def test_an_empty_mixture_names_the_file(tmp_path):
    spec = tmp_path / "mix.yaml"
    spec.write_text("mixture: []\n")
    with pytest.raises(DataError, match=r"mix.yaml: 'mixture' must be a non-empty list"):
        load_data(str(spec))


def test_jsonl_with_bom_crlf_and_blank_lines_is_read(tmp_path):
    path = tmp_path / "rows.jsonl"
    rows = [{"text": "a"}, {"text": "b"}, {"text": "c"}]
    path.write_bytes(b"\xef\xbb\xbf" + b"\r\n".join(json.dumps(r).encode() for r in rows[:2]) + b"\r\n\r\n"
                     + json.dumps(rows[2]).encode())  # and no final newline
    assert load_data({"files": str(path)}).to_list() == rows


def test_a_malformed_line_is_still_named(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_bytes(b"\xef\xbb\xbf{\"text\": \"a\"}\n{oops\n")
    with pytest.raises(DataError, match=r"rows.jsonl:2: malformed JSON line"):
        load_data({"files": str(path)})


def test_config_error_is_a_config_error():
    from chatstack.config import check_ranges

    class Cfg:
        learning_rate = 0.0
    with pytest.raises(ConfigError, match="learning_rate must be > 0"):
        check_ranges(Cfg(), "x.yaml")
