import pytest

from chatstack.config import parse_config, split_cli
from chatstack.errors import ConfigError
from chatstack.pretrain import PretrainConfig
from chatstack.sft import SFTStageConfig
from chatstack.tokenizer import TokenizerConfig


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_yaml_then_cli_overrides(tmp_path):
    cfg_file = write(tmp_path, "t.yaml", "vocab_size: 900\noutput_dir: out/tok\n")
    cfg = parse_config(TokenizerConfig, cfg_file, ["--vocab_size", "700"])
    assert cfg.vocab_size == 700 and cfg.output_dir == "out/tok"


def test_trainer_knobs_available_in_yaml(tmp_path):
    cfg_file = write(tmp_path, "p.yaml", "max_steps: 7\nlearning_rate: 0.01\nmodel_preset: micro\nwarmup_steps: 2\n")
    cfg = parse_config(PretrainConfig, cfg_file, ["--logging_steps", "3"])
    assert (cfg.max_steps, cfg.learning_rate, cfg.model_preset, cfg.logging_steps) == (7, 0.01, "micro", 3)


def test_sft_config_is_trl_config(tmp_path):
    from trl import SFTConfig
    cfg = parse_config(SFTStageConfig, write(tmp_path, "s.yaml", "assistant_only_loss: true\nmax_length: 64\n"))
    assert isinstance(cfg, SFTConfig) and cfg.assistant_only_loss and cfg.max_length == 64


def test_unknown_yaml_key_names_file_and_valid_keys(tmp_path):
    cfg_file = write(tmp_path, "bad.yaml", "vocab_sise: 900\n")
    with pytest.raises(ConfigError) as e:
        parse_config(TokenizerConfig, cfg_file)
    msg = str(e.value)
    assert "bad.yaml" in msg and "vocab_sise" in msg and "vocab_size" in msg and "Valid keys" in msg


def test_unknown_cli_key(tmp_path):
    with pytest.raises(ConfigError, match="not_a_key"):
        parse_config(TokenizerConfig, None, ["--not_a_key", "1"])


def test_extends_merges_base(tmp_path):
    write(tmp_path, "base.yaml", "vocab_size: 900\nseed: 3\n")
    child = write(tmp_path, "child.yaml", "extends: base.yaml\nseed: 5\n")
    cfg = parse_config(TokenizerConfig, child)
    assert (cfg.vocab_size, cfg.seed) == (900, 5)


def test_invalid_yaml_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="invalid YAML"):
        parse_config(TokenizerConfig, write(tmp_path, "x.yaml", "a: [1,\n"))
    with pytest.raises(ConfigError, match="not found"):
        parse_config(TokenizerConfig, tmp_path / "nope.yaml")


def test_split_cli():
    assert split_cli(["--config", "a.yaml", "--x", "1"]) == ("a.yaml", ["--x", "1"])
    assert split_cli(["--x", "1"]) == (None, ["--x", "1"])


def test_cli_reports_config_errors(tmp_path, capsys):
    from chatstack.cli import main
    rc = main(["tokenizer", "--config", str(write(tmp_path, "bad.yaml", "vocab_sise: 1\n"))])
    assert rc == 2 and "vocab_size" in capsys.readouterr().err
    assert main(["no-such-stage"]) == 2
