"""The "tokens to think" builder: work-first and answer-first answer the same problems, the
work is right, eval problems are never trained on, and the parser reads the committed answer."""
from __future__ import annotations

import json
import re

import pytest

from chatstack.builders.thinking import (
    DEFAULT_MIX,
    _counts,
    held_out,
    load_words,
    reply,
    thinking_conversations,
    thinking_eval_rows,
)
from chatstack.data.loading import load_data
from chatstack.errors import DataError
from chatstack.judges import stated_answer, thinking_correct


@pytest.fixture(scope="module")
def words_file(shared_data):
    path = shared_data / "english_words" / "words_alpha.txt.gz"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    return str(path)


@pytest.fixture(scope="module")
def pair(words_file):
    kw = dict(n=300, seed=5, words_file=words_file)
    return (thinking_conversations(variant="work_first", **kw).to_list(),
            thinking_conversations(variant="answer_first", **kw).to_list())


def test_same_problems_only_the_order_differs(pair):
    work, first = pair
    assert [r["messages"][0] for r in work] == [r["messages"][0] for r in first]
    for w, f in zip(work, first):
        final = f"The answer is {w['answer']}."
        assert w["messages"][1]["content"].endswith(final) and f["messages"][1]["content"].startswith(final)
        assert sorted(w["messages"][1]["content"]) == sorted(f["messages"][1]["content"])  # same characters
        assert stated_answer(w["messages"][1]["content"]) == stated_answer(f["messages"][1]["content"]) == w["answer"]
    kinds = {k: sum(r["kind"] == k for r in work) for k in DEFAULT_MIX}
    assert kinds == {k: v for k, v in _counts(300, DEFAULT_MIX).items() if k in DEFAULT_MIX}


def test_deterministic(words_file):
    a = thinking_conversations(n=50, seed=1, words_file=words_file).to_list()
    assert json.dumps(a) == json.dumps(thinking_conversations(n=50, seed=1, words_file=words_file).to_list())
    assert json.dumps(a) != json.dumps(thinking_conversations(n=50, seed=2, words_file=words_file).to_list())


def test_the_work_is_right(pair):
    for r in pair[0]:
        q, a = r["messages"][0]["content"], r["messages"][1]["content"]
        if r["kind"] == "word_problem":
            eqs = re.findall(r"(\d+) ([+-]) (\d+) = (\d+)\.", a)
            assert 2 <= len(eqs) <= 3
            for x, op, y, z in eqs:
                assert int(z) == (int(x) + int(y) if op == "+" else int(x) - int(y)) and int(z) >= 0
            assert eqs[-1][3] == r["answer"]
            start = int(re.search(r"starts with (\d+)", a).group(1))
            assert str(start) in q and int(eqs[0][0]) == start
            assert [int(eqs[i + 1][0]) for i in range(len(eqs) - 1)] == [int(e[3]) for e in eqs[:-1]]
        elif r["kind"] == "count_letters":
            letter, word = re.search(r"'(\w)'.*'(\w+)'", q).groups()
            spelled = re.search(r"Letter by letter: (.*?)\. The", a).group(1).split(", ")
            assert "".join(s[0] for s in spelled) == word
            assert r["answer"] == str(word.count(letter))
            marks = [int(s[3:-1]) for s in spelled if s.startswith(letter + " (")]
            assert marks == list(range(1, word.count(letter) + 1))
        else:
            word = re.search(r"'(\w+)'", q).group(1)
            assert r["answer"] == word[::-1] and f"Backwards: {', '.join(word[::-1])}." in a


def test_eval_problems_are_never_trained_on(words_file):
    train = thinking_conversations(n=1500, seed=0, words_file=words_file).to_list()
    held = thinking_eval_rows(n=300, words_file=words_file)
    assert {r["kind"] for r in held} == set(DEFAULT_MIX)
    train_q = {r["messages"][0]["content"] for r in train}
    assert not train_q & {r["question"] for r in held}
    word = lambda q: re.findall(r"'(\w\w+)'", q)[-1]  # noqa: E731
    train_words = {word(q) for q in train_q if "'" in q}
    eval_words = {word(r["question"]) for r in held if r["kind"] != "word_problem"}
    assert eval_words and not train_words & eval_words
    assert all(held_out(f"word:{w}") for w in eval_words)


def test_variant_mixed_and_mix():
    rows = thinking_conversations(n=60, variant="mixed", mix={"word_problem": 1}).to_list()
    assert {r["variant"] for r in rows} == {"work_first", "answer_first"}
    assert {r["kind"] for r in rows} == {"word_problem"}
    for r in rows:
        assert reply({"work": r["messages"][1]["content"].replace(f"The answer is {r['answer']}.", "").strip(),
                      "answer": r["answer"]}, r["variant"]) == r["messages"][1]["content"]


def test_packaged_word_list_is_the_default():
    words = load_words()
    assert len(words) > 2000 and all(w.isalpha() and w.islower() and 3 <= len(w) <= 10 for w in words)
    assert {"happy", "little", "friends"} <= set(words)


def test_parser():
    assert stated_answer("The answer is 12. 5 + 7 = 12.") == "12"
    assert stated_answer("x. The answer is olleh.") == "olleh"
    assert stated_answer("I think 12.") is None
    assert thinking_correct("3 + 4 = 7. The answer is 7.", "7")
    assert not thinking_correct("The answer is 8. 3 + 4 = 7. The answer is 7.", "7")  # the first statement counts


def test_bad_arguments_are_errors(tmp_path):
    with pytest.raises(DataError, match="variant"):
        thinking_conversations(variant="both")
    with pytest.raises(DataError, match="unknown kind"):
        thinking_conversations(mix={"poetry": 1})
    with pytest.raises(DataError, match="words_file not found"):
        thinking_conversations(words_file=str(tmp_path / "nope.txt"))
    (tmp_path / "few.txt").write_text("cat\ndog\n")
    with pytest.raises(DataError, match="need at least 20"):
        thinking_conversations(words_file=str(tmp_path / "few.txt"), mix={"count_letters": 1})


def test_the_comparison_mixtures_load():
    a = load_data("tiny_sft_work_first")
    b = load_data("tiny_sft_answer_first")
    assert a.column_names == b.column_names == ["messages"] and len(a) == len(b)
    answers = lambda ds: sorted(m[-1]["content"] for m in ds["messages"] if m[-1]["content"].startswith("The answer is"))  # noqa: E731
    assert answers(b) and not answers(a)  # only the answer-first set opens with the answer


def test_sum3_works_the_partial_sum_and_holds_out_triples():
    from chatstack.builders.thinking import thinking_conversations, thinking_eval_rows

    train = thinking_conversations(n=300, mix={"sum3": 1}, variant="work_first")
    asked = {m[0]["content"] for m in train["messages"]}
    for m in train["messages"][:20]:
        a, b, c = (int(x) for x in m[0]["content"][len("What is "):-1].split(" + "))
        assert m[1]["content"] == f"{a} + {b} = {a + b}. {a + b} + {c} = {a + b + c}. The answer is {a + b + c}."
        assert a + b <= 10 and c <= 10  # both steps are problems of the world's exercises (operands 1..10)
    held = thinking_eval_rows(n=50, mix={"sum3": 1})
    assert {r["kind"] for r in held} == {"sum3"} and not asked & {r["question"] for r in held}
    first = thinking_conversations(n=5, mix={"sum3": 1}, variant="answer_first")["messages"][0][1]["content"]
    assert first.startswith("The answer is")


def test_operand_copy_counts_restated_numbers_and_honest_answers():
    """benchmarks/operand_copy.py: a reply that miscopies the question's numbers is neither
    restated nor right, however well it adds what it wrote."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("operand_copy", Path(__file__).parents[1] / "benchmarks/operand_copy.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)

    class Replies:
        def __init__(self, replies):
            self.replies = replies

        def chat(self, conversations, **kw):
            self.asked = [c[0]["content"] for c in conversations]
            return self.replies

    three = Replies(["3 + 5 = 8. 8 + 2 = 10. The answer is 10.",  # restated and right
                     "7 + 7 = 14. 14 + 6 = 20.",  # miscopied: true arithmetic, wrong problem
                     "4 + 4 = 8. 8 + 4 = 12."])  # first two restated, the third miscopied
    got = bench.operand_copy(three, ["3 + 5 + 2", "7 + 1 + 6", "4 + 4 + 1"])
    assert three.asked == ["What is 3 + 5 + 2?", "What is 7 + 1 + 6?", "What is 4 + 4 + 1?"]
    assert got["restated"] == round(2 / 3, 4) and got["right"] == round(1 / 3, 4) and got["n"] == 3
    assert got["third_restated"] == round(2 / 3, 4)
    two = bench.operand_copy(Replies(["3 + 5 = 8.", "7 + 1 = 8.", "4 + 4 = 8."]), ["3 + 5", "7 + 1", "4 + 4"])
    assert "third_restated" not in two and two["right"] == 1
