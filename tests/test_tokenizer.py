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


def test_split_regex():
    assert r"\p{N}{1,3}" in split_regex(3) and r"\p{N}|" in split_regex(1) and r"\p{N}{1,2}" in split_regex(2)
    with pytest.raises(ValueError, match="max_digits"):
        split_regex(0)
