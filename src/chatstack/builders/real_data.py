"""Public post-training sets in the columns the stages read, so a real recipe names a Hub id
and the tests feed the same loader the local copies in ../shared/data.

- ``hh_preferences``: Anthropic HH-RLHF transcripts (`chosen`, `rejected`: "\\n\\nHuman: ...
  \\n\\nAssistant: ...", sharing all but the last assistant turn) -> conversational `prompt`,
  `chosen`, `rejected` (RewardTrainer) or, with ``prompts_only``, `prompt` alone (PPO);
- ``gsm8k_prompts``: GSM8K (`question`, `answer` ending in "#### 72") -> `prompt`, `answer`
  ("72") and `solution` ("$72$", what trl.rewards.accuracy_reward parses with math-verify);
- ``qa_facts``: TriviaQA / Natural Questions as the Hub ships them (`answer: {value, aliases}`,
  or `answer: [..]`) or as llm-foundry does (`context`, `answer`, `aliases`) -> `question`,
  `answer`, `aliases`, the facts of knowledge probing (chatstack.probing.file_facts).

A row that cannot be read is an error naming the row, never silently dropped.
"""

from __future__ import annotations

import re

import datasets

from chatstack.builders.chat_formats import _anchor_files
from chatstack.data.loading import load_data
from chatstack.errors import DataError

TURN = re.compile(r"\n\n(Human|Assistant): ")
GSM8K_SYSTEM = "Solve the problem step by step. Then write the final answer as \\boxed{N}."


def _rows(source, max_rows: int | None, where: str) -> list[dict]:
    ds = load_data(_anchor_files(source))
    if isinstance(ds, datasets.DatasetDict):
        raise DataError(f"{where}: the source has a test_size; put test_size on the outer spec instead")
    rows = ds.take(max_rows) if max_rows and isinstance(ds, datasets.IterableDataset) else ds
    rows = list(rows) if isinstance(rows, datasets.IterableDataset) else rows.to_list()
    return rows[:max_rows] if max_rows else rows


def hh_turns(transcript: str, where: str) -> list[dict]:
    """'\\n\\nHuman: a\\n\\nAssistant: b' -> [{user: a}, {assistant: b}]."""
    parts = TURN.split(transcript)
    if len(parts) < 3 or parts[0].strip():
        raise DataError(f"{where}: not an HH transcript ('\\n\\nHuman: ...\\n\\nAssistant: ...'): {transcript[:80]!r}")
    roles = {"Human": "user", "Assistant": "assistant"}
    return [{"role": roles[who], "content": text.strip()} for who, text in zip(parts[1::2], parts[2::2])]


def hh_preferences(
    source: str | dict, max_rows: int | None = None, prompts_only: bool = False, seed: int = 0
) -> datasets.Dataset:
    """Preference pairs (or PPO prompts) from HH-RLHF transcripts; pairs whose last assistant
    turn is empty, or whose two replies are the same, teach nothing and are skipped."""
    out = []
    for i, row in enumerate(_rows(source, max_rows, "hh_preferences")):
        where = f"hh_preferences: row {i}"
        try:
            chosen, rejected = hh_turns(row["chosen"], where), hh_turns(row["rejected"], where)
        except KeyError as e:
            raise DataError(f"{where}: needs columns chosen and rejected; the row has {sorted(row)}") from e
        if chosen[-1]["role"] != "assistant" or rejected[-1]["role"] != "assistant" or chosen[:-1] != rejected[:-1]:
            raise DataError(f"{where}: chosen and rejected must share the prompt and end on an assistant turn")
        prompt = chosen[:-1]
        if prompts_only:
            out.append({"prompt": prompt})
        elif chosen[-1]["content"] and rejected[-1]["content"] and chosen[-1] != rejected[-1]:
            out.append({"prompt": prompt, "chosen": [chosen[-1]], "rejected": [rejected[-1]]})
    if not out:
        raise DataError("hh_preferences: no usable pairs in the source")
    return datasets.Dataset.from_list(out)


def gsm8k_answer(solution: str, where: str) -> str:
    """The number after GSM8K's '####', commas removed."""
    if "####" not in solution:
        raise DataError(f"{where}: a GSM8K answer ends with '#### <number>', got {solution[-60:]!r}")
    return solution.rsplit("####", 1)[1].strip().replace(",", "")


def gsm8k_prompts(
    source: str | dict, system: str | None = GSM8K_SYSTEM, max_rows: int | None = None, seed: int = 0
) -> datasets.Dataset:
    """GRPO prompts with a verifiable answer (open-r1's layout: `prompt` messages + `solution`)."""
    out = []
    for i, row in enumerate(_rows(source, max_rows, "gsm8k_prompts")):
        where = f"gsm8k_prompts: row {i}"
        if "question" not in row or "answer" not in row:
            raise DataError(f"{where}: needs columns question and answer; the row has {sorted(row)}")
        answer = gsm8k_answer(row["answer"], where)
        prompt = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": row["question"]}]
        out.append({"prompt": prompt, "answer": answer, "solution": f"${answer}$"})
    return datasets.Dataset.from_list(out)


def qa_facts(source: str | dict, max_rows: int | None = None, seed: int = 0) -> datasets.Dataset:
    """Questions with every accepted answer, from any of the three layouts."""
    out = []
    for i, row in enumerate(_rows(source, max_rows, "qa_facts")):
        where = f"qa_facts: row {i}"
        question = row.get("question") or re.sub(r"^\s*Question:\s*|\s*Answer:\s*$", "", row.get("context") or "")
        answer, aliases = row.get("answer"), list(row.get("aliases") or [])
        if isinstance(answer, dict):  # TriviaQA on the Hub: {value, aliases, normalized_value, ...}
            answer, aliases = answer.get("value"), list(answer.get("aliases") or [])
        elif isinstance(answer, list):  # nq_open: every accepted answer
            answer, aliases = (answer[0] if answer else None), answer[1:]
        if not question or not isinstance(answer, str) or not answer.strip():
            raise DataError(f"{where}: expected a question and an answer (str, list or TriviaQA's dict); got {sorted(row)}")
        out.append({"question": question.strip(), "answer": answer.strip(), "aliases": [a for a in aliases if a]})
    return datasets.Dataset.from_list(out)
