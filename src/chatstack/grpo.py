"""Stage `grpo`: reinforcement learning with verifiable rewards (DeepSeek-R1 style) with
TRL's GRPOTrainer: for each prompt sample a group of answers, reward the correct ones (a
checker, not a learned model: nothing to hack) and the well-formed ones, and push the
policy toward answers better than their group's mean.

With `tools: [search, python]` (names or option mappings, chatstack.tools.registry) the tools
go to GRPOTrainer(tools=...): TRL renders their schemas into the prompt, parses the calls of
each rollout with the tokenizer's `response_template` (chatstack.tokenizer.RESPONSE_TEMPLATE,
set here when the tokenizer lacks one), runs them and continues the rollout, up to
`max_tool_calling_iterations`. Completions are then the full exchange (assistant tool calls,
`role: tool` results, the answer): the rewards read it (`tool_errors` penalises failed calls),
and the before/after accuracy runs the same tools through chatstack.tools.loop."""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
from trl import GRPOConfig, GRPOTrainer

from chatstack.data.loading import load_eval_split, load_splits, require_columns
from chatstack.engine import Engine
from chatstack.errors import ConfigError
from chatstack.evaluation.world_qa import exact_answer_eval
from chatstack.hardware import score_labelled_positions_on_cpu
from chatstack.judges import ANSWER_RE, STEP, arithmetic_correct, is_correct, last_number, number_correct
from chatstack.stage import Trained, require_chat_template, run_stage, save_chat_model, stage_main
from chatstack.tools.sandbox import ERROR_PREFIX


def _text(completion) -> str:
    """A completion is a string (standard format) or a list of messages (conversational; with
    tools: assistant tool calls, tool results, then the answer): the assistant's final words."""
    if isinstance(completion, str):
        return completion
    said = [m.get("content") or "" for m in completion if m.get("role") == "assistant"]
    return said[-1] if said else ""


def correctness_reward(completions, answer, expression=None, **kwargs) -> list[float]:
    """1 when the reply ends on the true answer and writes no expression but the question's own
    (chatstack.judges.arithmetic_correct): paying any reply whose last number is right taught the
    policy to stop restating the question (../shared/notes/composition-and-grpo). Prompts without an
    `expression` column: the last number alone (chatstack.judges.number_correct)."""
    if expression is None:
        return [1.0 if number_correct(_text(c), a) else 0.0 for c, a in zip(completions, answer)]
    return [1.0 if arithmetic_correct(_text(c), a, e) else 0.0 for c, a, e in zip(completions, answer, expression)]


FORMAT = re.compile(r"^\s*-?\d+ [-+*] -?\d+ = -?\d+\.?\s*$")


def format_reward(completions, **kwargs) -> list[float]:
    """0.2 for the worked form `a + b = c.` with nothing else."""
    return [0.2 if FORMAT.match(_text(c)) else 0.0 for c in completions]


def answer_reward(completions, answer, **kwargs) -> list[float]:
    """1 when the final reply states the true value (text answers, e.g. a fact found by search;
    chatstack.judges.is_correct)."""
    return [1.0 if is_correct(_text(c), a) else 0.0 for c, a in zip(completions, answer)]


def tool_error_reward(completions, **kwargs) -> list[float]:
    """-0.5 times the share of the rollout's tool results that are errors (bad JSON, unknown
    tool, failing code): read from the `role: tool` messages of the full exchange."""
    out = []
    for c in completions:
        results = [m.get("content") or "" for m in c if m.get("role") == "tool"] if not isinstance(c, str) else []
        out.append(-0.5 * sum(str(r).startswith(ERROR_PREFIX) for r in results) / len(results) if results else 0.0)
    return out


def math_reward(completions, solution, **kwargs) -> list[float | None]:
    """1 when math-verify finds the reply's answer (\\boxed{..} or $..$) equal to `solution`
    (trl.rewards.accuracy_reward, open-r1's check); None (skipped) for an unparseable gold answer."""
    from trl.rewards import accuracy_reward

    return accuracy_reward([[{"role": "assistant", "content": _text(c)}] for c in completions], solution)


BOXED = re.compile(r"\\boxed\{[^{}]+\}\s*\.?\s*$")


def boxed_format_reward(completions, **kwargs) -> list[float]:
    """0.2 for a reply that ends on its answer in \\boxed{..}, the form math_reward reads first."""
    return [0.2 if BOXED.search(_text(c)) else 0.0 for c in completions]


REWARDS = {"correctness": correctness_reward, "format": format_reward, "answer": answer_reward,
           "tool_errors": tool_error_reward, "math": math_reward, "boxed_format": boxed_format_reward}


def math_eval(model, tokenizer, rows: list[dict], max_new_tokens: int) -> dict:
    """Greedy accuracy on prompts with a `solution` (GSM8K), judged by math_reward."""
    replies = Engine(model, tokenizer).chat([r["prompt"] for r in rows], max_new_tokens=max_new_tokens)
    right = math_reward(replies, [r["solution"] for r in rows])
    return {"accuracy": sum(x or 0.0 for x in right) / len(rows), "n": len(rows),
            "samples": [{"prompt": r["prompt"][-1]["content"], "answer": r["answer"], "reply": rep}
                        for r, rep in list(zip(rows, replies))[:5]]}


def positions_from_mask(model) -> None:
    """TRL scores the policy's tokens with `model(input_ids, attention_mask)` and no position ids, so
    GPT-2's learned absolute positions count from the start of the left padding, while `generate`
    sampled those tokens with positions counted from the mask: the log-probs (and the gradient)
    belonged to another model than the one sampled. This pre-hook gives every forward that passes
    a mask and no positions the positions `generate` uses. Models with rotary positions are
    unaffected by padding offsets, and unchanged by the hook."""

    def hook(module, args, kwargs):
        mask = kwargs.get("attention_mask")
        if kwargs.get("position_ids") is None and mask is not None and mask.dim() == 2 and not args:
            kwargs["position_ids"] = (mask.long().cumsum(-1) - 1).clamp(min=0)
        return args, kwargs

    model.register_forward_pre_hook(hook, with_kwargs=True)


def answer_form(text: str) -> str:
    """work_first (a step "a + b = c" written before any stated answer), answer_first ("The answer
    is" before any step), or bare (neither)."""
    step, stated = STEP.search(text), ANSWER_RE.search(text)
    if step and (stated is None or step.start() < stated.start()):
        return "work_first"
    return "answer_first" if stated else "bare"


def arithmetic_eval(model, tokenizer, rows: list[dict], k: int = 8, max_new_tokens: int = 24, seed: int = 0) -> dict:
    """Greedy pass@1 (the honest judge, chatstack.judges.arithmetic_correct; `lenient`: the last number
    alone), pass@k at temperature 1 (some of k samples right: the headroom GRPO can turn into pass@1),
    the share of worked answers (a step "a + b = c" written) and the mean reply length in tokens."""
    engine = Engine(model, tokenizer)
    texts = [engine.render(r["prompt"]) for r in rows]
    stops = engine.stop_ids(chat=True)

    def judge(c, r):
        return c is not None and arithmetic_correct(c.text, r["answer"], r.get("expression") or r["prompt"][-1]["content"])

    greedy = engine.generate(texts, stops, max_new_tokens, batch_size=64)
    out = {"accuracy": sum(judge(c, r) for c, r in zip(greedy, rows)) / len(rows),
           "accuracy_lenient": sum(c is not None and number_correct(c.text, r["answer"]) for c, r in zip(greedy, rows))
           / len(rows),
           "worked_share": sum(c is not None and bool(STEP.search(c.text)) for c in greedy) / len(rows),
           "length": sum(len(c.ids) for c in greedy if c) / len(rows), "n": len(rows)}
    if k:
        torch.manual_seed(seed)
        sampled = engine.generate([t for t in texts for _ in range(k)], stops, max_new_tokens, batch_size=128,
                                  temperature=1.0)
        right = [judge(c, rows[i // k]) for i, c in enumerate(sampled)]
        out[f"pass_at_{k}"] = sum(any(right[i * k:(i + 1) * k]) for i in range(len(rows))) / len(rows)
        out["sample_accuracy"] = sum(right) / len(right)
        # "models need tokens to think", on the same model and problems: samples that work the steps
        # out before the answer against those that state it first
        for form in ("work_first", "answer_first"):
            mine = [ok for c, ok in zip(sampled, right) if c is not None and answer_form(c.text) == form]
            out[f"samples_{form}"] = len(mine)
            if mine:
                out[f"sample_accuracy_{form}"] = sum(mine) / len(mine)
    out["samples"] = [{"prompt": r["prompt"][-1]["content"], "answer": r["answer"], "reply": c.text if c else None}
                      for r, c in list(zip(rows, greedy))[:5]]
    return out


def chat_checks(model, tokenizer, cfg) -> dict:
    """Format compliance and identity (chatstack.evaluation.conversations), when configured."""
    if not cfg.chat_checks_dataset:
        return {}
    from types import SimpleNamespace

    from chatstack.evaluation.conversations import conversation_evals
    found = conversation_evals(model, tokenizer, SimpleNamespace(dataset=cfg.chat_checks_dataset, seed=cfg.seed,
                                                                 eval_thinking=0))
    return {k: found[k] for k in ("format_compliance", "identity_accuracy") if k in found}


class HeldOutAccuracy(TrainerCallback):
    """Every `every` optimizer steps, greedy held-out accuracy into the log history (R1's curve in
    miniature: reward, accuracy and completion length per step, chatstack report draws them)."""

    def __init__(self, tokenizer, rows: list[dict], every: int):
        self.tokenizer, self.rows, self.every = tokenizer, rows, every

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if self.every and state.global_step % self.every == 0:
            r = arithmetic_eval(model, self.tokenizer, self.rows, k=0)
            state.log_history.append({"step": state.global_step, "heldout_accuracy": round(r["accuracy"], 4),
                                      "heldout_length": round(r["length"], 2)})
            print(f"[grpo {state.global_step}] held-out accuracy {r['accuracy']:.3f}")


def _accuracy(model, tokenizer, rows: list[dict], tools, max_tool_calls: int, k: int = 8, max_new_tokens: int = 64) -> dict:
    """Before/after accuracy; with tools through the tool loop (last number, or the value in the reply)."""
    if not tools:
        if rows and "solution" in rows[0]:
            return math_eval(model, tokenizer, rows, max_new_tokens)
        if rows and all(re.fullmatch(r"-?\d+", r["answer"]) for r in rows):
            return arithmetic_eval(model, tokenizer, rows, k=k)
        return exact_answer_eval(model, tokenizer, rows)
    from chatstack.tools.loop import generate_with_tools
    results = generate_with_tools(Engine(model, tokenizer), [r["prompt"] for r in rows], tools=tools,
                                  max_tool_calls=max_tool_calls, tool_schemas_in_prompt=True, max_new_tokens=64)
    correct = [last_number(res["reply"]) == r["answer"] if re.fullmatch(r"-?\d+", r["answer"])
               else is_correct(res["reply"], r["answer"])
               for res, r in zip(results, rows)]
    return {"accuracy": sum(correct) / len(rows), "n": len(rows),
            "tool_use_rate": sum(res["tool_calls"] > 0 for res in results) / len(rows),
            "samples": [{"prompt": r["prompt"][-1]["content"], "answer": r["answer"], "messages": res["messages"]}
                        for r, res in list(zip(rows, results))[:5]]}


def check_fits(tokenizer, model, prompt: list[dict], tools, max_completion_length: int, where: str) -> None:
    """A prompt rendered as TRL renders it (with the tools' schemas) plus the completion must fit the model."""
    from chatstack.tools.loop import tool_schemas
    limit = Engine(model, tokenizer).context_limit
    schemas = tool_schemas({t.__name__: t for t in tools}) if tools else None
    n = len(tokenizer.apply_chat_template(prompt, tools=schemas, tokenize=True, add_generation_prompt=True,
                                          return_dict=False))
    if n + max_completion_length > limit:
        raise ConfigError(f"{where}: a prompt{' with the tool schemas' if tools else ''} takes {n} tokens; with "
                          f"max_completion_length {max_completion_length} that exceeds the model's context of {limit} "
                          "tokens (TRL renders every tool's JSON schema into the prompt; use fewer tools, a shorter "
                          "max_completion_length, or a model with a longer context)")


@dataclass
class GRPOStageConfig(GRPOConfig):
    output_dir: str = "outputs/tiny/grpo"
    model_name_or_path: str = "outputs/tiny/sft"
    dataset: str = field(default="tiny_arithmetic_prompts", metadata={"help": "prompts with an `answer` column"})
    eval_dataset: str = field(default="tiny_arithmetic_eval", metadata={
        "help": "held-out prompts for accuracy before/after (its test split if the spec makes one)"})
    reward_funcs: list[str] = field(default_factory=lambda: ["correctness", "format"])
    tools: list[str] | None = field(default=None, metadata={"help": "tools passed to GRPOTrainer(tools=...): names, or in "
                                                                  "YAML {name: ..., options} (chatstack.tools.registry)"})
    eval_prompts: int = field(default=200, metadata={"help": "at most this many held-out prompts"})
    eval_every: int = field(default=0, metadata={"help": "greedy held-out accuracy every this many steps (0 = only "
                                                        "before and after)"})
    pass_k: int = field(default=8, metadata={"help": "pass@k at temperature 1 before and after (0 = skip)"})
    chat_checks_dataset: str | None = field(default=None, metadata={
        "help": "the SFT dataset (datasets_cfg) whose identity builder names the expected identity: format compliance "
                "and identity are measured before and after, so RL on one task is seen not to break the assistant"})
    # GRPOConfig defaults chosen for a small model on a CPU
    learning_rate: float = 5e-5
    num_generations: int = 8
    per_device_train_batch_size: int = 16
    max_completion_length: int = 16
    temperature: float = 1.0
    beta: float = 0.0
    bf16: bool | None = False
    gradient_checkpointing: bool = False
    logging_steps: float = 5
    save_steps: float = 50
    save_total_limit: int | None = 1
    seed: int = 42

    def __post_init__(self):
        unknown = [r for r in self.reward_funcs if r not in REWARDS]
        if unknown:  # a config error, raised while parsing: before any model is loaded
            raise ConfigError(f"reward_funcs: unknown {unknown}; known: {sorted(REWARDS)}")
        if self.tools:  # names and options checked now, before any model is loaded
            from chatstack.tools.registry import get_tools
            get_tools(self.tools)
        super().__post_init__()


def fit(cfg: GRPOStageConfig, resume_from: str | None) -> Trained:
    tokenizer = AutoTokenizer.from_pretrained(cfg.model_name_or_path)
    require_chat_template(tokenizer, cfg.model_name_or_path)
    model = AutoModelForCausalLM.from_pretrained(cfg.model_name_or_path)
    train_ds, _ = load_splits(cfg.dataset, seed=cfg.seed)
    eval_rows = load_eval_split(cfg.eval_dataset, seed=cfg.seed).to_list()[:cfg.eval_prompts]
    require_columns(train_ds, ["prompt", "answer"], f"dataset '{cfg.dataset}'")
    tools = None
    if cfg.tools:
        from chatstack.tokenizer import add_response_template
        from chatstack.tools import get_tools
        tools = get_tools(cfg.tools)
        add_response_template(tokenizer)  # how TRL parses the calls in rollouts
        check_fits(tokenizer, model, train_ds[0]["prompt"], tools, cfg.max_completion_length, f"dataset '{cfg.dataset}'")
    max_calls = cfg.max_tool_calling_iterations or 2
    positions_from_mask(model)
    model.eval()
    before = _accuracy(model, tokenizer, eval_rows, tools, max_calls, cfg.pass_k, cfg.max_completion_length)
    chat_before = chat_checks(model, tokenizer, cfg)
    callbacks = [HeldOutAccuracy(tokenizer, eval_rows, cfg.eval_every)] if cfg.eval_every and not tools else []
    score_labelled_positions_on_cpu()  # the completions' log-probs only, not every position's
    trainer = GRPOTrainer(model=model, args=cfg, train_dataset=train_ds, processing_class=tokenizer,
                          reward_funcs=[REWARDS[r] for r in cfg.reward_funcs], callbacks=callbacks,
                          **({"tools": tools} if tools else {}))
    result = trainer.train(resume_from_checkpoint=resume_from)
    trainer.model.eval()
    after = _accuracy(trainer.model, tokenizer, eval_rows, tools, max_calls, cfg.pass_k, cfg.max_completion_length)
    metrics = {"accuracy_before": round(before["accuracy"], 4), "accuracy_after": round(after["accuracy"], 4),
               "eval_prompts": len(eval_rows), "train_loss": round(result.training_loss, 4),
               "samples_after": after["samples"]}
    for key in ("accuracy_lenient", f"pass_at_{cfg.pass_k}", "sample_accuracy", "worked_share", "length",
                "sample_accuracy_work_first", "sample_accuracy_answer_first", "samples_work_first",
                "samples_answer_first"):
        if key in before:
            metrics.update({f"{key}_before": round(before[key], 4), **({f"{key}_after": round(after[key], 4)}
                                                                        if key in after else {})})
    for when, checks in (("before", chat_before), ("after", chat_checks(trainer.model, tokenizer, cfg))):
        metrics.update({f"{k}_{when}": v for k, v in checks.items()})
    if tools:
        logs = trainer.state.log_history
        metrics.update(tool_use_rate_before=round(before["tool_use_rate"], 4),
                       tool_use_rate_after=round(after["tool_use_rate"], 4),
                       rollout_tool_call_frequency=[round(x["tools/call_frequency"], 4) for x in logs
                                                    if "tools/call_frequency" in x])
    return Trained(metrics, lambda out: save_chat_model(trainer.model, tokenizer, out), trainer.state.log_history,
                   is_main=trainer.is_world_process_zero())


def train(cfg: GRPOStageConfig) -> dict:
    return run_stage(cfg, fit)


def main(argv: list[str]) -> int:
    return stage_main(GRPOStageConfig, train, argv)
