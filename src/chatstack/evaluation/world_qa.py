"""chatstack's own evals on the synthetic world: ground truth is known, so each lesson of
the stack is a number. A reply is correct when it states the true value; it is a refusal
when it says it does not know; otherwise it is a (confident) wrong answer."""
from __future__ import annotations

import re

from chatstack.generate import chat

REFUSAL_MARKERS = ("i don't know", "i do not know", "i'm not sure", "i am not sure", "no information",
                   "not familiar", "don't have information", "do not have information", "cannot answer", "can't answer")


def is_refusal(reply: str) -> bool:
    r = reply.lower().replace("’", "'")
    return any(m in r for m in REFUSAL_MARKERS)


def is_correct(reply: str, answer: str) -> bool:
    return re.search(rf"(?<![\w]){re.escape(answer.lower())}(?![\w])", reply.lower()) is not None


def judge(reply: str, answer: str) -> str:
    """'correct' | 'refused' | 'wrong'."""
    if is_correct(reply, answer):
        return "correct"
    return "refused" if is_refusal(reply) else "wrong"


def qa_eval(model, tokenizer, rows: list[dict], batch_size: int = 64, max_new_tokens: int = 32) -> dict:
    """Greedy answers to world questions -> accuracy, refusal and hallucination rates."""
    if not rows:
        raise ValueError("qa_eval: no questions to ask")
    replies = chat(model, tokenizer, [[{"role": "user", "content": r["question"]}] for r in rows],
                   batch_size=batch_size, max_new_tokens=max_new_tokens)
    verdicts = [judge(rep, r["answer"]) for rep, r in zip(replies, rows)]
    n = len(rows)
    return {"accuracy": verdicts.count("correct") / n, "refusal_rate": verdicts.count("refused") / n,
            "hallucination_rate": verdicts.count("wrong") / n, "n": n,
            "samples": [{"question": r["question"], "answer": r["answer"], "reply": rep, "verdict": v}
                        for r, rep, v in list(zip(rows, replies, verdicts))[:5]]}


def exact_answer_eval(model, tokenizer, rows: list[dict], batch_size: int = 64, max_new_tokens: int = 24) -> dict:
    """Arithmetic-style prompts (`prompt` messages + `answer`): the last number in the reply must be the answer."""
    replies = chat(model, tokenizer, [r["prompt"] for r in rows], batch_size=batch_size, max_new_tokens=max_new_tokens)
    correct = [last_number(rep) == r["answer"] for rep, r in zip(replies, rows)]
    return {"accuracy": sum(correct) / len(rows), "n": len(rows),
            "samples": [{"prompt": r["prompt"][-1]["content"], "answer": r["answer"], "reply": rep} for r, rep in list(zip(rows, replies))[:5]]}


def last_number(text: str) -> str | None:
    """The last integer in `text`, thousands separators dropped ("838,102,050" -> "838102050")."""
    nums = re.findall(r"-?\d{1,3}(?:,\d{3})+(?!\d)|-?\d+", text)
    return nums[-1].replace(",", "") if nums else None
