"""Tool-use conversations over the synthetic world (SFT), and tool-use prompts (GRPO / eval).

Five kinds of rows, each in the standard `messages` format with the tools offered (`tools`
column, JSON schemas from get_json_schema):

- ``search``: a question about a practice person (below) -> assistant calls `search` with
  the question itself as the query -> the real search result -> the answer sentence, whose
  value is checked to be in the result. The question, not the bare name:
  copied whole, the name keeps the tokens it has in the question (a name after `"` is split
  differently from one after a space, and a tiny model cannot map one to the other), and BM25
  finds the right person with it at k=1 for every question of the tiny world;
- ``python_arithmetic``: 5-digit multiplication -> `python` prints the product -> "The
  answer is <product>." (short: every token written after the result is one more chance for
  a tiny model to miscopy it). `repeated_digits` is the share of operands drawn with a run
  of equal digits, where the tiny model miscopies (its tokenizer merges only some digit runs,
  '22', '194');
- ``python_counting``: how many times a letter appears in a word -> `python` -> answer;
- ``direct_qa``: a question about a person the model read about (qa_train) -> direct answer;
- ``direct_arithmetic``: small arithmetic -> direct answer, no call.

Practice people (`practice_people`): the search rows ask about people made up for them, one
question each, with names the world does not use and attributes drawn afresh in every round
of names, searched in a store of their own articles (the world's article format). Asked about
the world's unseen people instead, several rows per person, the tiny model learnt their facts
by heart from the SFT data and answered held-out people from memory: 27% right with search,
against 60% with fewer rows per person. With made-up people, only the result holds the answer.

Every tool result is the output of actually running the tool (the same `search` and
`python` as at inference), and is checked against the ground truth: a mismatch is an error,
never a silently wrong row. Same world and seed, same bytes.

Unseen people are split once per world (`tool_eval_people`): the eval share is for evaluating
search on people whose facts the model never trained on; the other share is for GRPO prompts.
"""
from __future__ import annotations

import json
import random
from concurrent.futures import ThreadPoolExecutor

import datasets

from chatstack.errors import DataError
from chatstack.tools.calls import tool_call
from chatstack.world.datasets import answer_sentence, get_world
from chatstack.world.generator import ATTRIBUTES, Person, World, full_names, random_person

DEFAULT_MIX = {"search": 0.35, "python_arithmetic": 0.2, "python_counting": 0.15,
               "direct_qa": 0.2, "direct_arithmetic": 0.1}
KINDS = tuple(DEFAULT_MIX)
MULTIPLY_TEMPLATES = ["What is {a} * {b}?", "What is {a} times {b}?", "Compute {a} x {b}.",
                      "Multiply {a} by {b}.", "What is the product of {a} and {b}?"]
# phrasings no training row uses, for the evals' held-out-phrasing figures
HELDOUT_MULTIPLY_TEMPLATES = ["Calculate {a} * {b}.", "How much is {a} times {b}?"]
HELDOUT_COUNTING_TEMPLATE = "How many times does the letter {letter} appear in {word}?"
ARGUMENTS = datasets.Json()  # tool arguments differ per tool: one JSON feature, not a struct of every key
MESSAGES = datasets.List({
    "role": datasets.Value("string"), "content": datasets.Value("string"), "name": datasets.Value("string"),
    "tool_calls": datasets.List({"type": datasets.Value("string"),
                                 "function": {"name": datasets.Value("string"), "arguments": ARGUMENTS}}),
})


def tool_eval_people(world="tiny", eval_fraction: float = 0.2) -> tuple[list, list]:
    """(train, eval) split of the unseen people, fixed by the world's seed alone."""
    if not 0 <= eval_fraction < 1:
        raise DataError(f"tools builder: eval_fraction must be in [0, 1), got {eval_fraction}")
    w = get_world(world)
    unseen = list(w.by_split("unseen"))
    random.Random(f"{w.config.seed}-tool-eval").shuffle(unseen)
    n_eval = round(len(unseen) * eval_fraction)
    return unseen[n_eval:], unseen[:n_eval]


def practice_people(world="tiny", n: int = 100, seed: int = 0) -> list[list[Person]]:
    """`n` made-up people for the search rows, in rounds: each round is a shuffle of the names
    the world does not use, with fresh attributes, so a name's facts change from round to
    round and only a search result can tell them."""
    w = get_world(world)
    used = {p.name for p in w.people}
    names = [name for name in full_names() if name not in used]
    if n > 0 and not names:
        raise DataError("tools builder: the world uses every name of the vocabulary; no names left for practice people")
    rng = random.Random(f"{seed}-practice-people")
    rounds = []
    while n > 0:
        batch = rng.sample(names, min(n, len(names)))
        rounds.append([random_person(rng, name) for name in batch])
        n -= len(batch)
    return rounds


def _counts(n: int, mix: dict[str, float]) -> dict[str, int]:
    unknown = set(mix) - set(KINDS)
    if unknown:
        raise DataError(f"tools builder: unknown kind(s) {sorted(unknown)} in mix; valid: {', '.join(KINDS)}")
    if any(v < 0 for v in mix.values()) or sum(mix.values()) <= 0:
        raise DataError(f"tools builder: mix weights must be >= 0 with a positive sum, got {mix}")
    total = sum(mix.values())
    exact = {k: n * mix.get(k, 0) / total for k in KINDS}
    counts = {k: int(v) for k, v in exact.items()}
    for k in sorted(KINDS, key=lambda k: (counts[k] - exact[k], KINDS.index(k)))[: n - sum(counts.values())]:
        counts[k] += 1
    return counts


def _operand(rng: random.Random, digits: int, repeated: float) -> int:
    """A `digits`-digit number; with probability `repeated`, one holding a run of 2-3 equal
    digits (17700, 55744): the operands the tiny model miscopied were all such numbers (a third
    of a uniform draw)."""
    if rng.random() >= repeated:
        return rng.randint(10 ** (digits - 1), 10 ** digits - 1)
    s = [rng.choice("0123456789") for _ in range(digits)]
    run = min(rng.randint(2, 3), digits)
    start = rng.randint(0, max(0, digits - run))
    s[start:start + run] = rng.choice("123456789" if start == 0 else "0123456789") * run
    s[0] = s[0] if s[0] != "0" else rng.choice("123456789")
    return int("".join(s))


def _pick(rng: random.Random, pool: list, k: int) -> list:
    """k items, without repeats while the pool lasts."""
    if not pool:
        return []
    out = []
    while len(out) < k:
        out += rng.sample(pool, min(len(pool), k - len(out)))
    return out


def _questions(w: World, people: list, phrasings) -> list[dict]:
    names = {p.name for p in people}
    return [r for r in w.qa_rows(("qa_train", "qa_heldout", "unseen"))
            if r["name"] in names and r["phrasing"] in phrasings]


def tool_conversations(world="tiny", seed: int = 0, n: int = 600, mix: dict[str, float] | None = None,
                       search_k: int = 2, phrasings: list[int] | None = None,
                       digits: int = 5, workers: int = 4, tools_column: bool = True,
                       repeated_digits: float = 0.0, system: str | None = None,
                       search_answer: str = "sentence") -> datasets.Dataset:
    """`n` tool-use conversations (see the module docstring); columns messages, tools (JSON
    schemas of search and python, as a JSON string: TRL's SFTTrainer reads it and passes it to
    the chat template), kind, answer. `search_k` must match the search tool used at inference.
    `system`: a system prompt every row starts with, the signal that tools are there for a
    model trained without schemas (the assistant: with it, search; without it, answer or refuse).
    `search_answer`: "sentence" answers a search as a question from memory is answered ("They work
    for X."); "echo" repeats the result's own sentence of the fact ("X has a job at Y."), so that
    the value follows the same words in the answer as in the result: a copy by prefix match, the
    pattern an induction head reads."""
    from chatstack.tools.python_tool import python
    from chatstack.tools.registry import get_tool_schemas
    from chatstack.tools.search_tool import make_search_tool, search

    if search_answer not in ("sentence", "echo"):
        raise DataError(f"tools builder: search_answer must be 'sentence' or 'echo', got {search_answer!r}")
    if not 0 <= repeated_digits <= 1:
        raise DataError(f"tools builder: repeated_digits must be in [0, 1], got {repeated_digits}")
    w = get_world(world)
    rng = random.Random(f"{seed}-tools")
    counts = _counts(n, mix or DEFAULT_MIX)
    phrasings = list(phrasings if phrasings is not None else [0, 1])
    schemas = json.dumps(get_tool_schemas([search, python])) if tools_column else ""  # same schema for every store
    rows: list[dict] = []

    def row(kind, question, calls, answer, truth, search_tool=None):
        msgs = [{"role": "system", "content": system}] if system else []
        msgs.append({"role": "user", "content": question})
        for call, _ in calls:
            msgs.append({"role": "assistant", "content": "", "tool_calls": [call]})
            msgs.append({"role": "tool", "name": call["function"]["name"], "content": None})
        msgs.append({"role": "assistant", "content": answer})
        rows.append({"messages": msgs, "tools": schemas, "kind": kind, "answer": truth,
                     "_expect": [e for _, e in calls], "_search": search_tool})

    attributes = list(ATTRIBUTES)
    for people in practice_people(w, counts["search"], seed):
        store = datasets.Dataset.from_list([{"id": f"practice-{i}", "title": p.name, "text": w.article(p, 0)}
                                            for i, p in enumerate(people)])
        practice_search = make_search_tool(store, k=search_k)
        for p in people:
            attribute = rng.choice(attributes)
            question = w.questions(p, attribute)[rng.choice(phrasings)]
            value = p.value(attribute)
            answer = (w.article_sentences(p, 0)[attribute] if search_answer == "echo"
                      else answer_sentence(p.name, attribute, value))
            row("search", question, [(tool_call("search", query=question), value)], answer, value, practice_search)
    for _ in range(counts["python_arithmetic"]):
        a, b = (_operand(rng, digits, repeated_digits) for _ in range(2))
        row("python_arithmetic", rng.choice(MULTIPLY_TEMPLATES).format(a=a, b=b),
            [(tool_call("python", code=f"print({a} * {b})"), str(a * b))], f"The answer is {a * b}.", str(a * b))
    for r in w.counting(counts["python_counting"], seed_offset=1000 + seed):
        row("python_counting", r["question"],
            [(tool_call("python", code=f"print({r['word']!r}.count({r['letter']!r}))"), r["answer"])],
            f"The letter '{r['letter']}' appears {r['answer']} times in '{r['word']}'.", r["answer"])
    for r in _pick(rng, _questions(w, w.by_split("qa_train"), phrasings), counts["direct_qa"]):
        row("direct_qa", r["question"], [], answer_sentence(r["name"], r["attribute"], r["answer"]), r["answer"])
    for r in w.arithmetic(counts["direct_arithmetic"], seed_offset=1000 + seed):
        row("direct_arithmetic", r["question"], [], f"{r['expression']} = {r['answer']}.", r["answer"])
    _run_tools(rows, {"python": python}, workers)
    rng.shuffle(rows)
    features = {"messages": MESSAGES, "tools": datasets.Value("string"), "kind": datasets.Value("string"),
                "answer": datasets.Value("string")}
    if not tools_column:  # no tools offered in the prompt (TRL reads a `tools` column as JSON)
        del features["tools"]
        for r in rows:
            del r["tools"]
    return datasets.Dataset.from_list(rows, features=datasets.Features(features))


def _run_tools(rows: list[dict], tools: dict, workers: int) -> None:
    """Fill each tool message with the tool's real output (python calls in parallel: each is
    a sandboxed process) and check it holds the expected value."""
    jobs = []
    for i, r in enumerate(rows):
        calls = [m["tool_calls"][0] for m in r["messages"] if m.get("tool_calls")]
        jobs += [(i, call, expect) for call, expect in zip(calls, r.pop("_expect"))]
    searches = {i: r.pop("_search") for i, r in enumerate(rows)}  # each practice round has its own store

    def run(job):
        i, call, _ = job
        fn = call["function"]
        tool = searches[i] if fn["name"] == "search" else tools[fn["name"]]
        return tool(**fn["arguments"])

    sandboxed = [j for j in jobs if j[1]["function"]["name"] == "python"]
    with ThreadPoolExecutor(max(1, workers)) as pool:
        done = dict(zip(map(id, sandboxed), pool.map(run, sandboxed)))
    results = [done[id(j)] if id(j) in done else run(j) for j in jobs]
    slots = {}
    for (i, call, expect), result in zip(jobs, results):
        ok = result.strip() == expect if call["function"]["name"] == "python" else expect in result
        if not ok:
            raise DataError(f"tools builder: {call['function']['name']} returned {result[:200]!r} for "
                            f"{call['function']['arguments']}, expected "
                            f"{'' if call['function']['name'] == 'python' else 'to contain '}"
                            f"{expect!r} (the tool's store or sandbox is not working as the data needs)")
        k = slots.get(i, 0)
        tool_msgs = [m for m in rows[i]["messages"] if m["role"] == "tool"]
        tool_msgs[k]["content"] = result
        slots[i] = k + 1


def tool_prompts(world="tiny", seed: int = 0, n: int = 300, mix: dict[str, float] | None = None,
                 split: str = "eval", eval_fraction: float = 0.2, phrasings: list[int] | None = None,
                 digits: int = 5, heldout_templates: bool = False) -> datasets.Dataset:
    """Prompt-only rows with a verifiable answer, for GRPO with tools and for evaluation:
    columns prompt (conversational), answer, kind. `split: eval` asks about the held-out
    unseen people (never in the SFT data); `split: train` about the others. Default mix: the
    three tool kinds in equal parts. `heldout_templates`: products and letter counts asked in
    phrasings no training row uses (people's questions: choose `phrasings`)."""
    w = get_world(world)
    if split not in ("train", "eval"):
        raise DataError(f"tool_prompts: split must be 'train' or 'eval', got {split!r}")
    rng = random.Random(f"{seed}-tool-prompts-{split}")
    counts = _counts(n, mix or {"search": 1, "python_arithmetic": 1, "python_counting": 1})
    train_people, eval_people = tool_eval_people(w, eval_fraction)
    people = eval_people if split == "eval" else train_people
    phrasings = list(phrasings if phrasings is not None else range(len(next(iter(ATTRIBUTES.values()))["questions"])))
    rows = []
    for r in _pick(rng, _questions(w, people, phrasings), counts["search"]):
        rows.append({"question": r["question"], "answer": r["answer"], "kind": "search"})
    lo, hi = 10 ** (digits - 1), 10 ** digits - 1
    for _ in range(counts["python_arithmetic"]):
        a, b = rng.randint(lo, hi), rng.randint(lo, hi)
        templates = HELDOUT_MULTIPLY_TEMPLATES if heldout_templates else MULTIPLY_TEMPLATES
        rows.append({"question": rng.choice(templates).format(a=a, b=b), "answer": str(a * b),
                     "kind": "python_arithmetic"})
    offset = 5000 + seed + (0 if split == "eval" else 100)
    for r in w.counting(counts["python_counting"], seed_offset=offset):
        question = HELDOUT_COUNTING_TEMPLATE.format(**r) if heldout_templates else r["question"]
        rows.append({"question": question, "answer": r["answer"], "kind": "python_counting"})
    for r in _pick(rng, _questions(w, w.by_split("qa_train"), phrasings), counts["direct_qa"]):
        rows.append({"question": r["question"], "answer": r["answer"], "kind": "direct_qa"})
    for r in w.arithmetic(counts["direct_arithmetic"], seed_offset=offset):
        rows.append({"question": r["question"], "answer": r["answer"], "kind": "direct_arithmetic"})
    rng.shuffle(rows)
    return datasets.Dataset.from_list([{"prompt": [{"role": "user", "content": r["question"]}],
                                        "answer": r["answer"], "kind": r["kind"]} for r in rows])
