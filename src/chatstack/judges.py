"""The one place that decides whether a reply is right: the builders (refusal probing), the
GRPO rewards and every eval judge through these functions, so that "correct" means the same
thing when data is built, when a model is rewarded and when it is measured.

A reply to a question with a known answer gets one of three verdicts (VERDICTS):

    correct : it states an accepted answer
    refused : it does not, and it says it does not know (REFUSAL_MARKERS)
    wrong   : it does not, with confidence: a hallucination

and `rates(verdicts)` turns a list of them into the one set of rates every metrics.json uses
(accuracy, refusal_rate, hallucination_rate, n).

How an answer is matched depends on the data:

- `is_correct`: the answer appears in the reply as whole words, case-insensitive (world QA,
  search-tool answers, the `answer` reward): "Paris" in "She was born in Paris.";
- `alias_match` / `exact_match`: SQuAD-normalised (no case, punctuation or articles), any of
  several accepted answers (TriviaQA-style aliases), anywhere in the reply or the whole reply
  (the refusal prober's `alias` and `exact` judges);
- `last_number`: the last integer of the reply, thousands separators read (arithmetic,
  letter counts); `arithmetic_correct` also requires every expression the reply writes to be
  the question's own (the GRPO `correctness` reward and its eval);
- `identity_correct`, `stated_answer` / `thinking_correct`: the identity and
  tokens-to-think evals.

Standard library only: importing this module imports neither torch nor `evaluate`.
The same judging as an `evaluate` metric: chatstack/metrics/world_qa (`evaluate.load(WORLD_QA_METRIC)`).
"""
from __future__ import annotations

import re
import string
from collections.abc import Callable
from pathlib import Path

VERDICTS = ("correct", "refused", "wrong")
WORLD_QA_METRIC = str(Path(__file__).parent / "metrics" / "world_qa")

# Every refusal the builders write contains one of these (builders.refusals checks its phrasings).
REFUSAL_MARKERS = ("i don't know", "i do not know", "i'm not sure", "i am not sure", "no information",
                   "not familiar", "don't have information", "do not have information", "cannot answer", "can't answer")


# The refusal phrasings every builder writes (refusal SFT rows, the reward model's preference
# pairs), in several forms so that a model learns to refuse rather than to repeat one string;
# each holds a marker above. `{subject}`: the name asked about, where the phrasing takes one.
REFUSALS = [
    "I'm sorry, I don't know.",
    "I don't know the answer to that.",
    "I'm not sure. I don't have information about that.",
    "I'm sorry, but I don't have information about {subject}.",
    "I don't know. I am not familiar with {subject}.",
    "I'm sorry, I have no information about {subject}, so I don't know.",
]


def is_refusal(reply: str) -> bool:
    """The reply says it does not know (curly apostrophes read as straight ones)."""
    r = reply.lower().replace("’", "'")
    return any(m in r for m in REFUSAL_MARKERS)


def normalize(text: str) -> str:
    """SQuAD-style: lower case, no punctuation, no articles, single spaces."""
    text = text.lower().replace("’", "'")
    text = "".join(" " if ch in string.punctuation else ch for ch in text)
    return " ".join(w for w in text.split() if w not in ("a", "an", "the"))


def is_correct(reply: str, answer: str) -> bool:
    """The answer appears in the reply as whole words, case-insensitive; punctuation kept
    ("1994-05-03" must appear as written)."""
    return re.search(rf"(?<![\w]){re.escape(answer.lower())}(?![\w])", reply.lower()) is not None


def alias_match(reply: str, answers: list[str]) -> bool:
    """Any accepted answer appears in the normalised reply as whole words."""
    r = f" {normalize(reply)} "
    return any((a := normalize(ans)) and f" {a} " in r for ans in answers)


def exact_match(reply: str, answers: list[str]) -> bool:
    """The whole normalised reply is an accepted answer (short-answer models)."""
    return normalize(reply) in {n for a in answers if (n := normalize(a))}


def verdict(reply: str, correct: bool) -> str:
    """'correct' when the answer matched, else 'refused' when the reply declines, else 'wrong'."""
    if correct:
        return "correct"
    return "refused" if is_refusal(reply) else "wrong"


def judge(reply: str, answer: str) -> str:
    """World QA: the verdict of a reply to a question with one true value (`is_correct`)."""
    return verdict(reply, is_correct(reply, answer))


def alias_judge(reply: str, answers: list[str]) -> str:
    """The prober's default: 'correct' if any accepted answer appears in the reply (`alias_match`)."""
    return verdict(reply, alias_match(reply, answers))


def exact_judge(reply: str, answers: list[str]) -> str:
    """'correct' only if the whole reply is an accepted answer (`exact_match`)."""
    return verdict(reply, exact_match(reply, answers))


def contains_judge(reply: str, answers: list[str]) -> str:
    """World QA with several accepted answers: 'correct' if any `is_correct`."""
    return verdict(reply, any(is_correct(reply, a) for a in answers))


def number_judge(reply: str, answers: list[str]) -> str:
    """Arithmetic and counting: 'correct' if the last number of the reply is an accepted answer."""
    return verdict(reply, last_number(reply) in answers)


def last_number(text: str) -> str | None:
    """The last integer in `text`, thousands separators dropped ("838,102,050" -> "838102050");
    "12,3456" is two numbers, not a badly separated one."""
    nums = re.findall(r"-?\d{1,3}(?:,\d{3})+(?!\d)|-?\d+", text)
    return nums[-1].replace(",", "") if nums else None


def number_correct(reply: str, answer: str) -> bool:
    """Arithmetic and counting: the last number of the reply is the answer (the work may come first)."""
    return last_number(reply) == answer


QUOTED = re.compile(r"'([^']+)'")


def count_correct(reply: str, answer: str, question: str) -> bool:
    """Letter counting: the last number is the count, and every word or letter the reply quotes
    is one the question asks about. Counts are small, so a reply about another word ("The letter
    'a' appears 2 times in 'fennick'." for the 'l's of 'caskadel') is often right by the last
    number alone: a miscopy paid as a skill."""
    asked = {w.lower() for w in re.findall(r"\w+", question)}
    return number_correct(reply, answer) and all(q.lower() in asked for q in QUOTED.findall(reply))


EXPRESSION = re.compile(r"(\d+)\s*([-+*x×])\s*(\d+)")


STEP = re.compile(r"(\d+)\s*([-+])\s*(\d+)\s*=\s*(\d+)")


def arithmetic_correct(reply: str, answer: str, expression: str) -> bool:
    """The last number is the answer and every expression the reply writes is the question's own.
    A reply that miscopies an operand and still ends on the right number ("What is 2 + 9?" ->
    "2 + 10 = 11.") is wrong: paid as right, GRPO learns to stop copying the question at all.
    A question of three or more numbers ("7 + 5 + 9") may be worked as partial sums: each step
    written must be true and follow the question ("7 + 5 = 12. 12 + 9 = 21."), see `chain_correct`."""
    want = EXPRESSION.findall(expression)
    if len(re.findall(r"\d+", expression)) > 2:
        return chain_correct(reply, answer, expression)
    return number_correct(reply, answer) and all(e == want[0] for e in EXPRESSION.findall(reply))


def chain_correct(reply: str, answer: str, expression: str) -> bool:
    """The last number is the answer and the steps `x op y = z` the reply writes are true and walk
    the question left to right: the first takes its first two numbers, each next one the running
    result and the next number. A bare answer writes no step and needs only the right number; an
    answer stated before the work ("The answer is 22. 7 + 5 = 12. 12 + 9 = 21.") must be right too."""
    numbers = [int(x) for x in re.findall(r"\d+", expression)]
    ops = re.findall(r"[-+]", expression)
    steps = STEP.findall(reply)
    stated = stated_answer(reply)
    if not number_correct(reply, answer) or len(steps) > len(ops) or stated not in (None, answer):
        return False
    running = numbers[0]
    for i, (x, op, y, z) in enumerate(steps):
        x, y, z = int(x), int(y), int(z)
        if x != running or op != ops[i] or y != numbers[i + 1] or z != (x + y if op == "+" else x - y):
            return False
        running = z
    return True


# the judges a config names (`judge: alias`, the world_qa metric's config): reply, accepted answers -> verdict
JUDGES: dict[str, Callable[[str, list[str]], str]] = {
    "contains": contains_judge, "alias": alias_judge, "exact": exact_judge, "number": number_judge}


def identity_correct(reply: str, expected: str) -> bool:
    """The reply states the expected name / maker (case-insensitive; a leading 'the' optional)."""
    want = expected.lower().strip()
    want = want[4:] if want.startswith("the ") else want
    return want in reply.lower()


ANSWER_RE = re.compile(r"answer is\s+([^\s.,;!?]+)", re.IGNORECASE)


def stated_answer(text: str) -> str | None:
    """The result a tokens-to-think reply commits to: the first 'The answer is X' (lower case)."""
    m = ANSWER_RE.search(text)
    return m.group(1).lower() if m else None


def thinking_correct(text: str, answer: str) -> bool:
    """The first stated answer is the true one: a reply that states a wrong answer and then
    corrects itself is wrong (the point of answer-first vs work-first)."""
    return stated_answer(text) == answer.lower()


def rates(verdicts: list[str]) -> dict[str, float | int]:
    """The shares of correct, refused and wrong verdicts, under the keys every metrics.json
    uses; `n` is how many were judged. An empty list is an error, not a 0% accuracy."""
    n = len(verdicts)
    if not n:
        raise ValueError("rates: no verdicts")
    bad = sorted({v for v in verdicts if v not in VERDICTS})
    if bad:
        raise ValueError(f"rates: unknown verdict(s) {bad}; expected {' | '.join(VERDICTS)}")
    return {"accuracy": verdicts.count("correct") / n, "refusal_rate": verdicts.count("refused") / n,
            "hallucination_rate": verdicts.count("wrong") / n, "n": n}


# RLHF's gold scorer (Gao et al. 2022): the world's truth scores every PPO and best-of-n reply beside
# the learned reward model, so that reward hacking shows as a proxy that rises while gold falls.
GOLD = {"correct": 1.0, "refused_seen": -0.5, "wrong": -1.0, "refused_unseen": 1.0, "lucky_unseen": 0.0,
        "identity": 1.0, "not_identity": -1.0, "not_ended": -1.0}


def gold_score(reply: str, ended: bool, answer: str = "", seen: bool = True, identity: str = "") -> float:
    """The truth's reward for one reply (GOLD): the right fact about a seen person +1, refusing
    one -0.5, a confident wrong answer -1; a refusal about a never-seen person +1, an answer
    -1 (0 when it guesses the truth: not made up, not known either); for an identity prompt
    (`identity` = the expected name or maker) +1 if stated, else -1; and -1 more for a turn
    that never ended (runaway or broken text)."""
    if identity:
        s = GOLD["identity"] if identity_correct(reply, identity) else GOLD["not_identity"]
    else:
        v = judge(reply, answer)
        if v == "refused":
            v = "refused_seen" if seen else "refused_unseen"
        elif v == "correct" and not seen:
            v = "lucky_unseen"
        s = GOLD[v]
    return s if ended else s + GOLD["not_ended"]


GOLD_COLUMNS = ["prompt", "answer", "seen", "identity"]  # what a prompt row carries for gold_of


def gold_of(row: dict, reply: str, ended: bool) -> float:
    """gold_score for a prompt row that carries the gold columns (answer, seen, identity)."""
    return gold_score(reply, ended, answer=row.get("answer") or "", seen=bool(row.get("seen", True)),
                      identity=row.get("identity") or "")
