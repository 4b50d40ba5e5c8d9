import hashlib
import json

import pytest

from chatstack.world import ATTRIBUTES, WorldConfig, build_world
from chatstack.world import datasets as wd


def digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


def test_same_seed_same_bytes_other_seed_differs():
    a, b, c = (build_world(WorldConfig(seed=s)) for s in (0, 0, 1))
    assert digest(a.to_dict()) == digest(b.to_dict())
    assert digest(a.to_dict()) != digest(c.to_dict())
    text_a = wd.pretraining_text({"seed": 0, "n_people": 1000, "n_seen": 50})["text"]
    text_b = wd.pretraining_text({"seed": 0, "n_people": 1000, "n_seen": 50})["text"]
    assert text_a == text_b


def test_world_size_attributes_and_paraphrases():
    w = build_world(WorldConfig(n_people=1000, n_seen=300))
    assert len(w.people) == 1000 and len({p.name for p in w.people}) == 1000
    assert len(ATTRIBUTES) >= 5
    p = w.people[0]
    articles = {w.article(p, k) for k in range(5)}
    assert len(articles) == 5  # five distinct paraphrases
    for art in articles:
        assert art.count(p.name) == len(ATTRIBUTES)  # the full name in every sentence
        assert p.birth_city in art and p.employer in art


def test_unseen_people_never_in_pretraining_text():
    cfg = {"seed": 0, "n_people": 300, "n_seen": 60, "n_arithmetic": 100, "n_counting": 20}
    text = "\n".join(wd.pretraining_text(cfg)["text"])
    w = wd.get_world(cfg)
    assert all(p.name in text for p in w.by_split("qa_train", "qa_heldout"))
    assert not any(p.name in text for p in w.by_split("unseen"))
    # QA text only for the qa_train people: questions about held-out seen people are never shown
    assert not any(f"Q: Where was {p.name} born?" in text for p in w.by_split("qa_heldout"))


def test_qa_rows_have_truth_and_seen_flag():
    cfg = {"seed": 0, "n_people": 100, "n_seen": 20}
    rows = wd.qa(cfg).to_list()
    w = wd.get_world(cfg)
    person = {p.name: p for p in w.people}
    assert {r["seen"] for r in rows} == {True, False}
    for r in rows[:50]:
        p = person[r["name"]]
        assert r["answer"] == p.value(r["attribute"])
        assert r["seen"] == (p.split != "unseen")


def test_exercises_are_correct():
    w = build_world(WorldConfig(n_people=50, n_seen=10))
    for r in w.arithmetic(200):
        assert int(r["answer"]) == eval(r["expression"])
    for r in w.counting(100):
        assert int(r["answer"]) == r["word"].count(r["letter"]) > 0


def test_world_cli_writes_jsonl(tmp_path):
    from chatstack.cli import main
    assert main(["world", "--world", "tiny", "--output_dir", str(tmp_path)]) == 0
    people = [json.loads(line) for line in (tmp_path / "people.jsonl").read_text().splitlines()]
    assert len(people) == 1000 and {"name", "birth_date", "birth_city", "university", "field", "employer"} <= set(people[0])
    assert (tmp_path / "qa.jsonl").stat().st_size > 0 and (tmp_path / "encyclopedia.jsonl").stat().st_size > 0


def test_year_first_states_the_year_in_every_birth_sentence():
    from chatstack.world.generator import WorldConfig, build_world

    w = build_world(WorldConfig(n_people=20, n_seen=10, year_first=True))
    default = build_world(WorldConfig(n_people=20, n_seen=10))
    assert [p.name for p in w.people] == [p.name for p in default.people]  # the same people, written otherwise
    for p in w.by_split("qa_train", "qa_heldout"):
        full_date, _ = p.date_words()
        for k in range(5):
            assert p.birth_year in w.article(p, k) and full_date not in w.article(p, k)
    assert any(p.date_words()[0] in default.article(p, 0) for p in default.by_split("qa_train"))


def test_tool_chats_in_pretraining_are_rendered_as_the_chat_template_renders_them():
    from transformers.utils.chat_template_utils import _compile_jinja_template

    from chatstack.builders.midtraining import pretraining_mix
    from chatstack.builders.tools import tool_conversations
    from chatstack.tokenizer import default_chat_template
    from chatstack.world import datasets as wd

    args = {"n": 4, "search_k": 1, "tools_column": False, "system": "Tools.", "mix": {"search": 1.0}}
    text = pretraining_mix("tiny", tool_chats=args)
    tool_docs = [r["text"] for r in text if r["kind"] == "tool_search"]
    assert len(tool_docs) == 4 and all(d.startswith("<|im_start|>system\nTools.<|im_end|>") for d in tool_docs)
    template = _compile_jinja_template(default_chat_template())
    for conv in tool_conversations("tiny", **args)["messages"]:
        assert wd.chatml(conv) == template.render(messages=conv, add_generation_prompt=False)
    seen = {p.name for p in wd.get_world("tiny").people}
    assert not any(name in "".join(tool_docs) for name in seen)  # practice people only
    from chatstack.builders.identity import EVAL_QUESTIONS
    mixed = pretraining_mix("tiny", tool_chats=args, identity_chats={"name": "Nimbus", "maker": "Cloudworks Lab", "n": 20})
    identity = [r["text"] for r in mixed if r["kind"] == "identity"]
    assert len(identity) == 20 and len(mixed) == len(text) + 20 and all(d.startswith("<|im_start|>") for d in identity)
    assert sum("Nimbus" in d for d in identity) >= 15  # the eval's held-out phrasings stay out of pretraining too
    assert not any(q in d for d in identity for qs in EVAL_QUESTIONS.values() for q in qs)


def test_reading_documents_hold_their_answer_only_in_their_own_article():
    from chatstack.builders.midtraining import pretraining_mix, reading_documents
    from chatstack.errors import DataError

    docs = reading_documents("tiny", n=30, questions=2)
    assert len(docs) == 30 and all(d["kind"] == "reading" for d in docs)
    world_names = {p.name for p in wd.get_world("tiny").people}
    values = vocab_values()
    for d in docs:
        article, qa = d["text"].split("\n\n")
        assert not any(name in d["text"] for name in world_names)  # made-up people: nothing to recall, only to read
        assert qa.count("\nA: ") == 2
        answered = {v for line in qa.split("\n") if line.startswith("A: ") for v in values if v in line}
        assert answered and all(v in article for v in answered), (qa, article)  # the answer is in the article
    assert len({d["text"][:30] for d in docs}) == 30
    plain = pretraining_mix("tiny")
    mixed = pretraining_mix("tiny", reading={"n": 12})
    assert len(mixed) == len(plain) + 12 and sum(r["kind"] == "reading" for r in mixed) == 12
    with pytest.raises(DataError, match="reading: questions"):
        reading_documents("tiny", n=3, questions=9)


def test_short_reading_documents_keep_the_asked_fact_among_fewer_sentences():
    from chatstack.builders.midtraining import reading_documents
    from chatstack.errors import DataError

    full, short = reading_documents("tiny", n=40), reading_documents("tiny", n=40, facts=2)
    assert full == reading_documents("tiny", n=40, facts=5)  # all five sentences: the documents as before
    for d in short:
        article, qa = d["text"].split("\n\n")
        assert article.count(". ") == 1 and article.endswith(".")  # two sentences
    assert len({a["text"].split("\n\n")[1] for a in short}) > 30  # different people, different questions
    assert sum(len(d["text"]) for d in short) < 0.6 * sum(len(d["text"]) for d in full)
    values = vocab_values()
    for d in short:
        article, qa = d["text"].split("\n\n")
        answered = {v for v in values if v in qa.split("\nA: ")[1]}
        assert answered and all(v in article for v in answered), (qa, article)
    with pytest.raises(DataError, match="reading: facts"):
        reading_documents("tiny", n=3, questions=2, facts=1)


def test_passes_write_the_mix_again_with_new_reading_documents_and_hold_out_one_pass_text():
    from chatstack.builders.midtraining import pretraining_mix
    from chatstack.errors import DataError

    args = {"tool_chats": {"n": 4, "search_k": 1, "tools_column": False, "mix": {"search": 1.0}},
            "reading": {"n": 10, "facts": 3}}
    once = pretraining_mix("tiny", **args)
    thrice = pretraining_mix("tiny", passes=3, **args)
    train, test = thrice["train"], thrice["test"]
    assert test.num_rows == round(0.02 * (once.num_rows - 10)) and "reading" not in set(test["kind"])
    assert train.num_rows == 3 * (once.num_rows - 10 - test.num_rows) + 30
    heads = [r["text"].split("\n\n")[1] for r in train if r["kind"] == "reading"]
    assert len(set(heads)) > 25  # 30 people, each read once: nothing to learn by heart
    from collections import Counter
    in_once = Counter(r["text"] for r in once if r["kind"] != "reading")
    in_test, in_train = Counter(test["text"]), Counter(train["text"])
    assert all(in_once[t] >= k for t, k in in_test.items())  # the held-out rows are the text's own,
    assert all(in_train[t] == 3 * (in_once[t] - in_test[t]) for t in in_test)  # left out of every pass
    assert pretraining_mix("tiny", passes=1, **args).to_list() == once.to_list()
    with pytest.raises(DataError, match="passes"):
        pretraining_mix("tiny", passes=0)
    from chatstack.data import load_data
    spec = {"builder": "world_pretraining", "args": {"passes": 2}}
    assert load_data(spec, split="test").num_rows == round(0.02 * pretraining_mix("tiny").num_rows)
    with pytest.raises(DataError, match="test_size: the builder holds out its own"):
        load_data({**spec, "test_size": 0.1})


def vocab_values() -> list[str]:
    """Every value an attribute can take: what an answer line may state."""
    from chatstack.world import vocab
    return [*vocab.CITIES, *vocab.UNIVERSITIES, *vocab.FIELDS, *vocab.EMPLOYERS, *map(str, range(1940, 2005))]


def test_article_passes_weight_the_articles_and_nothing_else():
    cfg = {"seed": 0, "n_people": 300, "n_seen": 20, "n_arithmetic": 100, "n_counting": 20}
    one, two = (wd.pretraining_text(cfg, article_passes=n).to_list() for n in (1, 2))
    kinds = lambda rows: sorted(r["kind"] for r in rows if r["kind"] != "article")  # noqa: E731
    articles = lambda rows: [r["text"] for r in rows if r["kind"] == "article"]  # noqa: E731
    assert len(articles(two)) == 2 * len(articles(one)) == 2 * 20 * 5
    assert kinds(two) == kinds(one)
    # each pass orders every paraphrase's sentences anew: the same facts, other text
    assert len(set(articles(two))) > len(articles(one))
    assert sorted(" ".join(sorted(a.rstrip(".").split(". "))) for a in articles(two)) == sorted(
        2 * [" ".join(sorted(a.rstrip(".").split(". "))) for a in articles(one)])
    with pytest.raises(ValueError, match="article_passes"):
        wd.pretraining_text(cfg, article_passes=0)


def test_chat_arithmetic_sets_how_many_exercises_are_chats():
    cfg = {"seed": 0, "n_people": 300, "n_seen": 20, "n_arithmetic": 100, "n_counting": 20}
    count = lambda rows: sum(r["kind"] == "chat_arithmetic" for r in rows)  # noqa: E731
    assert count(wd.pretraining_text(cfg).to_list()) == 25  # a quarter of n_arithmetic
    assert count(wd.pretraining_text(cfg, chat_arithmetic=7).to_list()) == 7
    with pytest.raises(ValueError, match="chat_arithmetic"):
        wd.pretraining_text(cfg, chat_arithmetic=-1)
