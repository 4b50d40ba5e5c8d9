"""Real conversation data in other layouts -> the standard `messages` column, so that public
sets mix with the synthetic ones in one datasets_cfg mixture.

`source` is any dataset spec of chatstack.data.loading (a Hub id, local files, ...); the
layout is one of:

- ``messages``: already `[{role, content}, ...]` (smoltalk, ultrachat_200k, ...): checked only;
- ``sharegpt``: `conversations: [{from: human|gpt|system, value}]` (FastChat, ShareGPT);
- ``prompt_response``: `prompt` + `response`; an Alpaca template around the prompt
  ("### Instruction: ... ### Response:") is removed (dolly_hhrlhf, llm-foundry);
- ``instruction``: `instruction` + `instances: [{input, output}]` (self-instruct), one
  conversation per instance, the input appended to the instruction.

An optional `system` prompt is put first. A row that cannot be read (an unknown role, an
empty turn, turns out of order) is an error naming the row, never silently dropped.
"""
from __future__ import annotations

import re
from pathlib import Path

import datasets

from chatstack.data.loading import load_data
from chatstack.errors import DataError
from chatstack.paths import REPO_ROOT

FORMATS = ("messages", "sharegpt", "prompt_response", "instruction")
SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "chatgpt": "assistant",
                  "bing": "assistant", "bard": "assistant", "system": "system"}
ALPACA = re.compile(r"^.*?### Instruction:\s*(?P<instruction>.*?)\s*"
                    r"(?:### Input:\s*(?P<input>.*?)\s*)?### Response:\s*$", re.S)


def _check(messages: list[dict], where: str) -> list[dict]:
    if not messages:
        raise DataError(f"{where}: empty conversation")
    roles = [m["role"] for m in messages]
    body = roles[1:] if roles[0] == "system" else roles
    if not body or body[0] != "user" or roles[-1] != "assistant":
        raise DataError(f"{where}: expected [system] user ... assistant turns, got roles {roles}")
    for i, m in enumerate(messages):
        if m["role"] not in ("system", "user", "assistant", "tool"):
            raise DataError(f"{where}: message {i}: unknown role {m['role']!r}")
        if not isinstance(m.get("content"), str) or not m["content"].strip():
            raise DataError(f"{where}: message {i} ({m['role']}): empty or non-text content")
    return [{"role": m["role"], "content": m["content"]} for m in messages]


def _convert(row: dict, fmt: str, where: str) -> list[list[dict]]:
    try:
        if fmt == "messages":
            return [row["messages"]]
        if fmt == "sharegpt":
            out = []
            for i, turn in enumerate(row["conversations"]):
                role = SHAREGPT_ROLES.get(str(turn["from"]).lower())
                if role is None:
                    raise DataError(f"{where}: turn {i}: unknown speaker {turn['from']!r}; known: {sorted(SHAREGPT_ROLES)}")
                out.append({"role": role, "content": turn["value"]})
            return [out]
        if fmt == "prompt_response":
            prompt = row["prompt"]
            m = ALPACA.match(prompt)
            if m:
                prompt = m["instruction"] + (f"\n\n{m['input']}" if m["input"] else "")
            return [[{"role": "user", "content": prompt.strip()}, {"role": "assistant", "content": row["response"].strip()}]]
        convs = []
        for inst in row["instances"] or [{"input": "", "output": None}]:
            user = row["instruction"].strip() + (f"\n\n{inst['input'].strip()}" if (inst.get("input") or "").strip() else "")
            convs.append([{"role": "user", "content": user},
                          {"role": "assistant", "content": (inst["output"] or "").strip()}])
        return convs
    except KeyError as e:
        raise DataError(f"{where}: the '{fmt}' layout needs column/key {e}; the row has {sorted(row)}") from None


def _anchor_files(source):
    """Relative `files` of an inline source spec: as given, else from the current directory,
    else from the repo root (the rule of chatstack.paths.find_resource), so a datasets_cfg
    YAML can name ../shared/data/... whatever the working directory."""
    if not isinstance(source, dict) or "files" not in source:
        return source
    files = source["files"] if isinstance(source["files"], list) else [source["files"]]
    anchored = []
    for f in files:
        p = Path(f).expanduser()
        anchored.append(str(p if p.is_absolute() or p.exists() or not (REPO_ROOT / p).exists() else REPO_ROOT / p))
    return {**source, "files": anchored}


def chat_conversations(source: str | dict, format: str = "messages", system: str | None = None,
                       max_rows: int | None = None, seed: int = 0) -> datasets.Dataset:
    """Load `source` and return its conversations as a `messages` column (plus `source_row`)."""
    if format not in FORMATS:
        raise DataError(f"chat_conversations: format must be one of {', '.join(FORMATS)}, got {format!r}")
    ds = load_data(_anchor_files(source), seed=seed)
    if isinstance(ds, datasets.DatasetDict):
        raise DataError("chat_conversations: the source has a test_size; put test_size on the outer spec instead")
    name = source if isinstance(source, str) else source.get("hub") or source.get("files") or source.get("builder")
    if max_rows:
        ds = ds.take(max_rows) if isinstance(ds, datasets.IterableDataset) else ds.select(range(min(max_rows, len(ds))))
    rows = []
    for i, row in enumerate(ds):
        for messages in _convert(row, format, f"{name}: row {i}"):
            messages = ([{"role": "system", "content": system}] if system else []) + list(messages)
            rows.append({"messages": _check(messages, f"{name}: row {i}"), "source_row": i})
    if not rows:
        raise DataError(f"chat_conversations: {name} produced no conversations")
    return datasets.Dataset.from_list(rows)
