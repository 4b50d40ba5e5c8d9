"""The base's recall per attribute in the pretrain stage's metrics.json (chatstack.evaluation.recall):
the eval suite's completion-style world QA and arithmetic, per attribute, on every person of the
pretraining world (a preset or a world given as WorldConfig fields), only for world datasets."""
from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from chatstack.config import parse_config
from chatstack.evaluation import recall, runners
from chatstack.evaluation.suite import run_suite
from chatstack.evaluation.suite_config import ArithmeticConfig, SuiteConfig, WorldQAConfig
from chatstack.pretrain import PretrainConfig, train, world_of
from chatstack.world.datasets import get_world
from chatstack.world.generator import ATTRIBUTES

REPO = Path(__file__).resolve().parents[1]
MICRO = REPO / "recipes" / "micro"
SMALL_WORLD = {"seed": 3, "n_people": 40, "n_seen": 12, "paraphrases": 2, "n_arithmetic": 50, "n_counting": 10,
               "max_operand": 5}
COPY_KEYS = {"copy_name_accuracy", "reading_accuracy"} | {f"reading_accuracy_{a}" for a in ATTRIBUTES}
KEYS = {f"recall_{w}_{a}" for w in ("heldout", "trained") for a in ATTRIBUTES} | {"arithmetic_accuracy"} | COPY_KEYS


def test_world_of_reads_the_builder_world(tmp_path):
    assert world_of("tiny_pretrain") == "tiny"
    assert world_of("web_tiny") is None  # real text: no world, no recall
    spec = tmp_path / "w.yaml"
    spec.write_text(yaml.safe_dump({"builder": "world_pretraining", "args": {"world": SMALL_WORLD}}))
    assert world_of(str(spec)) == SMALL_WORLD


def test_recall_is_per_attribute_on_every_person_of_the_given_world(monkeypatch):
    """A fake base model that knows every birth year and every sum, nothing else: recall 1 for
    birth_year, 0 for the other attributes, on both splits, asked as the suite asks."""
    world = get_world(SMALL_WORLD)
    years = {q: p.value("birth_year") for p in world.by_split("qa_train", "qa_heldout")
             for q in world.questions(p, "birth_year")}
    asked = []

    def complete_lines(ctx, prompts, max_new_tokens):
        asked.extend(prompts)
        replies = []
        for p in prompts:
            if m := re.fullmatch(r"(\d+) ([-+]) (\d+) =", p):
                a, op, b = int(m[1]), m[2], int(m[3])
                replies.append(str(a + b if op == "+" else a - b))
            else:
                q = re.fullmatch(r"Q: (.*)\nA:", p, re.S)[1]
                replies.append(f"They were born in the year {years[q]}." if q in years else "In Paris.")
        return replies

    monkeypatch.setattr(runners, "complete_lines", complete_lines)
    from chatstack.evaluation import copying
    monkeypatch.setattr(copying, "copying", lambda engine, world, batch_size: dict.fromkeys(COPY_KEYS, 0.5))
    got = recall.base_recall(SimpleNamespace(device="cpu"), None, SMALL_WORLD)
    assert set(got) == KEYS
    for w in ("heldout", "trained"):
        assert got[f"recall_{w}_birth_year"] == 1.0
        assert all(got[f"recall_{w}_{a}"] == 0.0 for a in ATTRIBUTES if a != "birth_year")
    assert got["arithmetic_accuracy"] == 1.0
    people = world.by_split("qa_train", "qa_heldout")
    questions = [p for p in asked if p.startswith("Q: ")]
    assert len(questions) == len(people) * len(ATTRIBUTES) * 2  # every person, phrasings 0 and 1
    assert all(any(p.name in q for q in questions) for p in people)


def test_copying_probes_score_a_model_that_copies_and_not_one_that_guesses():
    """The name probe is cut right after a first name's second mention, with its surname written
    once before; the reading probe's value is in its article. A model that copies scores 1, one
    that writes the commonest answer 0."""
    from chatstack.evaluation.copying import copying, name_prompts, reading_prompts

    names, reads = name_prompts(SMALL_WORLD, 20), reading_prompts(SMALL_WORLD, 20)
    assert len(names) >= 15 and len(reads) == 20 * len(ATTRIBUTES)
    for prompt, last in names:
        first = prompt.split()[-1]
        assert prompt.count(first + " ") == 1 and f"{first} {last}" in prompt  # written once in full
    truth = {prompt: value for _, prompt, value in reads}
    assert all(value in prompt.split("\n\n")[0] for prompt, value in truth.items())

    class Copier:  # the surname after the first mention; the value read from the article
        def complete(self, prompts, max_new_tokens, batch_size):
            out = []
            for p in prompts:
                if p.endswith("A:"):
                    out.append(f" They were {truth[p]}.\nQ: next")
                else:
                    first = p.split()[-1]
                    out.append(" " + p[p.index(first + " ") + len(first) + 1:].split()[0] + " was")
            return out

    class Guesser:
        def complete(self, prompts, max_new_tokens, batch_size):
            return [" They were born in Paris." if p.endswith("A:") else " Smith" for p in prompts]

    good, bad = copying(Copier(), SMALL_WORLD, n=20), copying(Guesser(), SMALL_WORLD, n=20)
    assert set(good) == COPY_KEYS and all(v == 1.0 for v in good.values())
    assert all(v == 0.0 for v in bad.values())


def test_pretrain_metrics_carry_recall_as_the_suite_measures_it(tmp_path):
    from chatstack.tokenizer import TokenizerConfig, train_tokenizer
    tok = tmp_path / "tokenizer"
    train_tokenizer(parse_config(TokenizerConfig, MICRO / "tokenizer.yaml", ["--output_dir", str(tok)]))
    out = tmp_path / "pretrain"
    metrics = train(parse_config(PretrainConfig, MICRO / "pretrain.yaml", [
        "--tokenizer_name_or_path", str(tok), "--output_dir", str(out), "--disable_tqdm", "true",
        "--report_to", "none", "--sample_max_new_tokens", "2"]))
    assert KEYS <= set(metrics) and all(0 <= metrics[k] <= 1 for k in KEYS)
    suite = SuiteConfig(name="check", world="tiny", evals={
        "world_qa": WorldQAConfig(splits=["qa_heldout", "qa_train"], n=None), "arithmetic": ArithmeticConfig(n=None)})
    result = run_suite(out, suite)
    by_attribute = result["runs"]["world_qa"]["by_attribute"]
    assert by_attribute["world_qa_seen_heldout"] == {a: metrics[f"recall_heldout_{a}"] for a in sorted(ATTRIBUTES)}
    assert by_attribute["world_qa_seen_train"] == {a: metrics[f"recall_trained_{a}"] for a in sorted(ATTRIBUTES)}
    assert result["evals"]["arithmetic"]["accuracy"] == metrics["arithmetic_accuracy"]
    heldout = [metrics[f"recall_heldout_{a}"] for a in ATTRIBUTES]
    assert result["evals"]["world_qa_seen_heldout"]["accuracy"] == pytest.approx(sum(heldout) / len(heldout), abs=1e-3)
