"""The tokenizer stage: numbers split into runs of at most `max_digits` digits before BPE."""
import json

import pytest

from chatstack.config import parse_config
from chatstack.tokenizer import TokenizerConfig, split_regex, train_tokenizer


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Text full of repeated numbers, so BPE would merge digit pairs if the split let it."""
    d = tmp_path_factory.mktemp("corpus")
    docs = [{"text": f"In {1900 + i % 60} the mill made {i * 37 % 1000} barrels; "
                     f"by {1950 + i % 40} it made {222 + i % 7}."} for i in range(400)]
    (d / "docs.jsonl").write_text("\n".join(json.dumps(x) for x in docs))
    (d / "docs.yaml").write_text(f"hub: json\ndata_files: {d / 'docs.jsonl'}\nsplit: train\n")
    return d / "docs.yaml"


def _train(corpus, out, max_digits):
    from transformers import AutoTokenizer

    cfg = parse_config(TokenizerConfig, None, ["--dataset", str(corpus), "--output_dir", str(out),
                                               "--vocab_size", "400", "--max_digits", str(max_digits)])
    train_tokenizer(cfg)
    return AutoTokenizer.from_pretrained(out)


def test_one_digit_per_token(corpus, tmp_path):
    """max_digits 1 (as Llama 2): every digit is its own token, so copying a number is
    copying a uniform sequence; the default (GPT-4's 1-3) lets BPE merge frequent digit runs."""
    one = _train(corpus, tmp_path / "one", 1)
    three = _train(corpus, tmp_path / "three", 3)
    number = "2422228782 in 1944"
    assert [t for t in one.tokenize(number) if any(c.isdigit() for c in t)] == list("2422228782") + list("1944")
    assert any(sum(c.isdigit() for c in t) > 1 for t in three.tokenize(number))
    assert one.decode(one(number, add_special_tokens=False)["input_ids"]) == number
    assert not any(sum(c.isdigit() for c in t) > 1 for t in one.get_vocab())


def test_number_space_gives_a_number_the_space_before_it():
    """GPT-4's split makes " 3" two pieces, so every number follows the same " " token and a copy
    by prefix match cannot tell the operands of "7 + 3" apart; `number_space` keeps " 3" whole."""
    from tokenizers import Regex, pre_tokenizers

    def pieces(number_space):
        split = pre_tokenizers.Split(Regex(split_regex(3, number_space)), behavior="isolated")
        return [p for p, _ in split.pre_tokenize_str("What is 7 + 3? In 1956, print(495 * 688)")]
    assert pieces(False)[2:6] == [" ", "7", " +", " "] and "3" in pieces(False)
    assert pieces(True)[2:5] == [" 7", " +", " 3"] and " 195" in pieces(True) and "495" in pieces(True)
    assert [p for p in pieces(True) if p.strip() == ""] == []
    assert split_regex(3, False) == split_regex(3)


def test_split_regex():
    assert r"\p{N}{1,3}" in split_regex(3) and r"\p{N}|" in split_regex(1) and r"\p{N}{1,2}" in split_regex(2)
    with pytest.raises(ValueError, match="max_digits"):
        split_regex(0)


def test_the_tokenizer_can_train_on_the_pretraining_text_once_without_its_reading_documents(tmp_path):
    import yaml

    from chatstack.data import load_data
    from chatstack.data.loading import resolve_spec
    from chatstack.tokenizer import TokenizerConfig, tokenizer_text_spec

    mix = resolve_spec("tiny_pretrain")
    without = {k: v for k, v in mix["args"].items() if k not in ("reading", "passes")}
    small = {"builder": mix["builder"], "args": {**without, "reading": {"n": 40, "facts": 3}, "passes": 2}}
    (tmp_path / "mix.yaml").write_text(yaml.safe_dump(small))
    spec = tokenizer_text_spec(TokenizerConfig(dataset=str(tmp_path / "mix.yaml"),
                                               drop_dataset_args=["reading", "passes"]))
    assert spec["args"] == without  # the recipe's text, once, as it is without the documents
    text = load_data(spec)
    kinds = set(text["kind"])
    assert "reading" not in kinds and {"identity", "tool_search"} <= kinds
    assert "reading" in set(load_data(str(tmp_path / "mix.yaml"), split="train")["kind"])
    assert load_data(str(tmp_path / "mix.yaml"), split="train").num_rows > 1.9 * text.num_rows  # two passes
    # a dataset without the args (tiny-web's files) and no args to drop: the dataset as named
    assert tokenizer_text_spec(TokenizerConfig(dataset="web_tiny", drop_dataset_args=["reading"])) == "web_tiny"
    assert tokenizer_text_spec(TokenizerConfig(dataset="tiny_pretrain")) == "tiny_pretrain"
