"""'Models need tokens to think': conversations whose answers either work the steps out
before stating the result (`work_first`) or state the result first and justify it after
(`answer_first`). A transformer does a fixed amount of computation per token, so a result
stated before the work has to be computed in the forward pass of a single token; stated
after, it can lean on the tokens of the work. The eval (`thinking_eval_rows` +
chatstack.judges.thinking_correct, run by the sft stage) shows which variant gets more
held-out problems right.

Three kinds of rows, all answered with "The answer is X.":

- ``word_problem``: a multi-step arithmetic story about people of the synthetic world
  ("Ada Abbot has 7 apples. Ada gives 3 apples to Bram Calder. ..."); the work is one
  equation per step;
- ``count_letters``: how many times a letter appears in a word, done character by character
  with a running count ("s, t, r (1), a, w, b, e, r (2), r (3), y");
- ``spell_backwards``: the word spelled out letter by letter, then reversed;
- ``sum3``: "What is 3 + 5 + 9?", the work being its partial sum ("3 + 5 = 8. 8 + 9 = 17."):
  answer-first, the sum of three numbers comes out of one token's forward pass; work-first,
  two sums of two, each a problem of the world's exercises (a + b <= max_operand, so the
  partial sum is an operand the base has added before). Held-out triples are never trained on.

Held-out problems: every problem has a signature (the numbers and operations, or the word
and letter) and a fixed hash of it puts it in `train` or `eval`, so eval problems never
appear in any training set, whatever `n` or seed. Words for the two spelling kinds come
from a packaged list of common English words (words.txt beside this file) or `words_file`.
Same arguments, same bytes.
"""
from __future__ import annotations

import gzip
import random
import zlib
from functools import lru_cache
from importlib import resources
from pathlib import Path

import datasets

from chatstack.errors import DataError
from chatstack.world.datasets import get_world

KINDS = ("word_problem", "count_letters", "spell_backwards", "sum3")
VARIANTS = ("work_first", "answer_first", "mixed")
DEFAULT_MIX = {"word_problem": 0.6, "count_letters": 0.25, "spell_backwards": 0.15}
EVAL_SHARE = 5  # one problem in EVAL_SHARE (by signature hash) is held out for the eval

ITEMS = [("apple", "apples"), ("book", "books"), ("coin", "coins"), ("pencil", "pencils"), ("stamp", "stamps"),
         ("marble", "marbles"), ("ticket", "tickets"), ("cookie", "cookies"), ("shell", "shells"), ("card", "cards")]
START = ["{name} has {a} {items}.", "{name} owns {a} {items}.", "{name} starts the day with {a} {items}."]
ADD = ["{first} buys {b} more {items}.", "{other} gives {first} {b} {items}.", "{first} finds {b} more {items}.",
       "{first} gets {b} {items} as a gift."]
SUB = ["{first} gives {b} {items} to {other}.", "{first} sells {b} {items}.", "{first} loses {b} {items}.",
       "{first} uses {b} {items}."]
ASK = ["How many {items} does {first} have now?", "How many {items} does {first} have at the end?"]
COUNT_Q = ["How many times does the letter '{letter}' appear in '{word}'?", "How many '{letter}'s are in the word '{word}'?",
           "Count the letter '{letter}' in '{word}'."]
BACK_Q = ["Spell '{word}' backwards.", "What is '{word}' written backwards?", "Reverse the word '{word}'."]


def held_out(signature: str) -> bool:
    return zlib.crc32(signature.encode()) % EVAL_SHARE == 0


def load_words(words_file: str | None = None, min_len: int = 3, max_len: int = 10) -> list[str]:
    """Lowercase alphabetic words, min_len..max_len letters: the packaged list or `words_file`
    (one word per line, .gz allowed; e.g. ../shared/data/english_words/words_alpha.txt.gz)."""
    return list(_load_words(str(Path(words_file).expanduser().resolve()) if words_file else None, min_len, max_len))


@lru_cache(maxsize=4)
def _load_words(words_file: str | None, min_len: int, max_len: int) -> tuple[str, ...]:
    if words_file:
        path = Path(words_file).expanduser()
        if not path.is_file():
            raise DataError(f"thinking builder: words_file not found: {words_file}")
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt", encoding="utf-8") as f:
            lines = f.read().splitlines()
    else:
        lines = resources.files("chatstack.builders").joinpath("words.txt").read_text().splitlines()
    words = sorted({w.strip().lower() for w in lines if w.strip() and not w.startswith("#")})
    words = [w for w in words if w.isascii() and w.isalpha() and min_len <= len(w) <= max_len]
    if len(words) < 20:
        raise DataError(f"thinking builder: {words_file or 'words.txt'} has {len(words)} words of {min_len}-{max_len} "
                        "letters; need at least 20")
    return tuple(words)


def _counts(n: int, mix: dict[str, float]) -> dict[str, int]:
    unknown = set(mix) - set(KINDS)
    if unknown:
        raise DataError(f"thinking builder: unknown kind(s) {sorted(unknown)} in mix; valid: {', '.join(KINDS)}")
    if any(v < 0 for v in mix.values()) or sum(mix.values()) <= 0:
        raise DataError(f"thinking builder: mix weights must be >= 0 with a positive sum, got {mix}")
    total = sum(mix.values())
    exact = {k: n * mix.get(k, 0) / total for k in KINDS}
    counts = {k: int(v) for k, v in exact.items()}
    for k in sorted(KINDS, key=lambda k: (counts[k] - exact[k], KINDS.index(k)))[: n - sum(counts.values())]:
        counts[k] += 1
    return counts


class _Problems:
    def __init__(self, world, seed, split: str, words: list[str], min_steps: int, max_steps: int, max_operand: int | None):
        if split not in ("train", "eval"):
            raise DataError(f"thinking builder: split must be 'train' or 'eval', got {split!r}")
        if not 1 <= min_steps <= max_steps:
            raise DataError(f"thinking builder: need 1 <= min_steps <= max_steps, got {min_steps}, {max_steps}")
        self.w = get_world(world)
        self.rng = random.Random(f"{seed}-thinking-{split}")
        self.eval = split == "eval"
        self.words = [w for w in words if held_out(f"word:{w}") == self.eval]
        self.people = [p.name for p in self.w.people]
        self.max_operand = max_operand or self.w.config.max_operand
        self.min_steps, self.max_steps = min_steps, max_steps

    def _accept(self, signature: str) -> bool:
        return held_out(signature) == self.eval

    def word_problem(self) -> dict:
        rng, m = self.rng, self.max_operand
        for _ in range(1000):
            name, other = rng.sample(self.people, 2)
            first = name.split()[0]
            singular, plural = rng.choice(ITEMS)
            a = rng.randint(1, m)
            steps, value = [], a
            for _ in range(rng.randint(self.min_steps, self.max_steps)):
                # the running value stays in 0..2*max_operand, the range of the world's exercises
                op = "+" if value == 0 or (value < 2 * m and rng.random() < 0.5) else "-"
                b = rng.randint(1, min(m, 2 * m - value)) if op == "+" else rng.randint(1, min(m, value))
                steps.append((op, b, value, value + b if op == "+" else value - b))
                value = steps[-1][3]
            signature = f"wp:{a}:" + ":".join(f"{op}{b}" for op, b, _, _ in steps)
            if self._accept(signature):
                break
        else:  # pragma: no cover - the hash splits 1 in EVAL_SHARE, so this cannot happen in practice
            raise DataError("thinking builder: could not draw a word problem for this split")
        items = lambda k: singular if k == 1 else plural  # noqa: E731
        text = [rng.choice(START).format(name=name, a=a, items=items(a))]
        for op, b, _, _ in steps:
            text.append(rng.choice(ADD if op == "+" else SUB).format(first=first, other=other, b=b, items=items(b)))
        question = " ".join(text) + " " + rng.choice(ASK).format(first=first, items=plural)
        work = [f"{first} starts with {a} {items(a)}."] + [f"{x} {op} {b} = {y}." for op, b, x, y in steps]
        return {"kind": "word_problem", "question": question, "work": " ".join(work), "answer": str(value),
                "signature": signature}

    def count_letters(self) -> dict:
        rng = self.rng
        word = rng.choice(self.words)  # the word list itself is split: a word is train or eval
        letter = rng.choice(sorted(set(word))) if rng.random() < 0.85 else rng.choice("abcdefghijklmnopqrstuvwxyz")
        count, parts = 0, []
        for ch in word:
            if ch == letter:
                count += 1
                parts.append(f"{ch} ({count})")
            else:
                parts.append(ch)
        question = rng.choice(COUNT_Q).format(letter=letter, word=word)
        return {"kind": "count_letters", "question": question, "work": f"Letter by letter: {', '.join(parts)}.",
                "answer": str(count), "signature": f"count:{word}:{letter}"}

    def sum3(self) -> dict:
        m = self.max_operand
        for _ in range(1000):
            a, b, c = (self.rng.randint(1, m) for _ in range(3))
            if a + b <= m and self._accept(f"sum3:{a}:{b}:{c}"):
                break
        else:  # pragma: no cover - the hash splits 1 in EVAL_SHARE
            raise DataError("thinking builder: could not draw a sum for this split")
        return {"kind": "sum3", "question": f"What is {a} + {b} + {c}?", "work": f"{a} + {b} = {a + b}. "
                f"{a + b} + {c} = {a + b + c}.", "answer": str(a + b + c), "signature": f"sum3:{a}:{b}:{c}"}

    def spell_backwards(self) -> dict:
        word = self.rng.choice(self.words)
        question = self.rng.choice(BACK_Q).format(word=word)
        work = f"Letter by letter: {', '.join(word)}. Backwards: {', '.join(reversed(word))}."
        return {"kind": "spell_backwards", "question": question, "work": work, "answer": word[::-1],
                "signature": f"back:{word}"}


def reply(row: dict, variant: str) -> str:
    final = f"The answer is {row['answer']}."
    return f"{row['work']} {final}" if variant == "work_first" else f"{final} {row['work']}"


def _rows(world, seed, n, mix, split, words_file, min_steps, max_steps, max_operand) -> list[dict]:
    if n < 1:
        raise DataError(f"thinking builder: n must be >= 1, got {n}")
    counts = _counts(n, dict(mix or DEFAULT_MIX))
    words = load_words(words_file) if counts["count_letters"] or counts["spell_backwards"] else []
    gen = _Problems(world, seed, split, words, min_steps, max_steps, max_operand)
    rows = [getattr(gen, kind)() for kind in KINDS for _ in range(counts[kind])]
    gen.rng.shuffle(rows)
    return rows


def thinking_conversations(world="tiny", seed: int = 0, n: int = 500, variant: str = "work_first",
                           mix: dict[str, float] | None = None, words_file: str | None = None, split: str = "train",
                           min_steps: int = 2, max_steps: int = 3, max_operand: int | None = None) -> datasets.Dataset:
    """`n` conversations (`messages`, plus `kind`, `variant`, `answer`) in one answer order.

    variant: work_first | answer_first | mixed (each row picks one at random); mix: share of
    each kind (word_problem, count_letters, spell_backwards); max_operand: the world's by default.
    """
    if variant not in VARIANTS:
        raise DataError(f"thinking builder: variant must be one of {', '.join(VARIANTS)}, got {variant!r}")
    rows = _rows(world, seed, n, mix, split, words_file, min_steps, max_steps, max_operand)
    rng = random.Random(f"{seed}-thinking-variant")
    out = []
    for r in rows:
        v = rng.choice(VARIANTS[:2]) if variant == "mixed" else variant
        out.append({"messages": [{"role": "user", "content": r["question"]},
                                 {"role": "assistant", "content": reply(r, v)}],
                    "kind": r["kind"], "variant": v, "answer": r["answer"]})
    return datasets.Dataset.from_list(out)


def thinking_eval_rows(world="tiny", seed: int = 0, n: int = 100, mix: dict[str, float] | None = None,
                       words_file: str | None = None, min_steps: int = 2, max_steps: int = 3,
                       max_operand: int | None = None) -> list[dict]:
    """Held-out problems: {kind, question, answer}; none of them is in any training set."""
    rows = _rows(world, f"eval-{seed}", n, mix, "eval", words_file, min_steps, max_steps, max_operand)
    return [{"kind": r["kind"], "question": r["question"], "answer": r["answer"]} for r in rows]



def thinking_prompts(world="tiny", seed: int = 0, n: int = 500, mix: dict[str, float] | None = None,
                     split: str = "train", max_operand: int | None = None) -> datasets.Dataset:
    """RL prompts (GRPO) for the kinds with a verifiable number (`sum3`, `word_problem`): columns
    prompt (conversational), answer and, for sums, the question's `expression` (the honest judge
    checks the steps follow it: chatstack.judges.chain_correct). `split: eval` draws only held-out
    problems, each once; `split: train` never one of them."""
    mix = dict(mix or {"sum3": 1.0})
    if split == "eval":
        rows = _rows(world, f"eval-{seed}", n, mix, "eval", None, 2, 3, max_operand)
        rows = list({r["question"]: r for r in rows}.values())
    else:
        rows = _rows(world, seed, n, mix, "train", None, 2, 3, max_operand)
    out = []
    for r in rows:
        expression = r["question"][len("What is "):-1] if r["kind"] == "sum3" else ""
        out.append({"prompt": [{"role": "user", "content": r["question"]}], "answer": r["answer"],
                    "expression": expression, "kind": r["kind"]})
    return datasets.Dataset.from_list(out)
