"""chatstack's own evals on the synthetic world: ground truth is known, so each lesson of
the stack is a number. The model answers greedily through chatstack.engine; each reply is
judged by chatstack.judges (correct when it states the true value, refused when it says it
does not know, otherwise a confident wrong answer), and the rates come from the `world_qa`
evaluate metric (chatstack/metrics/world_qa, loaded offline from its folder)."""
from __future__ import annotations

from functools import cache

from chatstack.engine import Engine
from chatstack.judges import WORLD_QA_METRIC


@cache
def world_qa_metric(judge: str = "contains"):
    """The local `evaluate` metric (imported here, not at module level: `import evaluate`
    costs ~2 s, it imports transformers.pipelines)."""
    import evaluate
    return evaluate.load(WORLD_QA_METRIC, judge, keep_in_memory=True)


def qa_eval(model, tokenizer, rows: list[dict], batch_size: int = 64, max_new_tokens: int = 32) -> dict:
    """Greedy answers to world questions -> accuracy, refusal and hallucination rates (and each verdict)."""
    if not rows:
        raise ValueError("qa_eval: no questions to ask")
    replies = Engine(model, tokenizer).chat([[{"role": "user", "content": r["question"]}] for r in rows],
                                            batch_size=batch_size, max_new_tokens=max_new_tokens)
    scores = world_qa_metric().compute(predictions=replies, references=[[r["answer"]] for r in rows],
                                       return_verdicts=True)
    verdicts = scores.pop("verdicts")
    return {**scores, "verdicts": verdicts,
            "samples": [{"question": r["question"], "answer": r["answer"], "reply": rep, "verdict": v}
                        for r, rep, v in list(zip(rows, replies, verdicts))[:5]]}


def exact_answer_eval(model, tokenizer, rows: list[dict], batch_size: int = 64, max_new_tokens: int = 24) -> dict:
    """Arithmetic-style prompts (`prompt` messages + `answer`): the last number in the reply must be the answer."""
    replies = Engine(model, tokenizer).chat([r["prompt"] for r in rows], batch_size=batch_size,
                                            max_new_tokens=max_new_tokens)
    scores = world_qa_metric("number").compute(predictions=replies, references=[[r["answer"]] for r in rows])
    return {"accuracy": scores["accuracy"], "n": scores["n"],
            "samples": [{"prompt": r["prompt"][-1]["content"], "answer": r["answer"], "reply": rep}
                        for r, rep in list(zip(rows, replies))[:5]]}
