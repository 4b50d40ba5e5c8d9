"""world_qa: accuracy, refusal rate and hallucination rate of replies to questions whose
answers are known, as an `evaluate` metric. The judging is chatstack.judges' (the same
verdicts the builders, the GRPO rewards and the evals use); this module only gives it
evaluate's interface, so any generation loop can score replies the way chatstack does:

    import evaluate
    from chatstack.judges import WORLD_QA_METRIC
    world_qa = evaluate.load(WORLD_QA_METRIC)            # a local folder: no network
    world_qa.compute(predictions=["She was born in Paris.", "I don't know."], references=[["Paris"], ["Rome"]])
    # {'accuracy': 0.5, 'refusal_rate': 0.5, 'hallucination_rate': 0.0, 'n': 2}

The config name picks the judge (chatstack.judges.JUDGES): `contains` (default: an accepted
answer appears as whole words), `alias` and `exact` (SQuAD-normalised; the refusal prober's)
or `number` (the last number of the reply). References are the accepted answers of each
question (a list, or one string). `return_verdicts=True` adds the verdict of each reply.
"""
import datasets
import evaluate

from chatstack.judges import JUDGES, rates

_CITATION = ""
_KWARGS_DESCRIPTION = """
Args:
    predictions: list of replies (str).
    references: list of accepted answers per reply (list of str, or one str).
    return_verdicts: also return `verdicts`, one of correct | refused | wrong per reply.
Returns:
    accuracy, refusal_rate, hallucination_rate (shares of the replies) and n.
"""


@evaluate.utils.file_utils.add_start_docstrings(__doc__, _KWARGS_DESCRIPTION)
class WorldQA(evaluate.Metric):
    def _info(self):
        if self.config_name not in JUDGES and self.config_name != "default":
            raise KeyError(f"world_qa: unknown config '{self.config_name}'; expected one of {', '.join(JUDGES)}")
        return evaluate.MetricInfo(
            description=__doc__, citation=_CITATION, inputs_description=_KWARGS_DESCRIPTION,
            features=[datasets.Features({"predictions": datasets.Value("string"),
                                         "references": datasets.Sequence(datasets.Value("string"))}),
                      datasets.Features({"predictions": datasets.Value("string"),
                                         "references": datasets.Value("string")})])

    def _compute(self, predictions, references, return_verdicts: bool = False):
        judge = JUDGES["contains" if self.config_name == "default" else self.config_name]
        verdicts = [judge(p, [r] if isinstance(r, str) else list(r)) for p, r in zip(predictions, references)]
        out = rates(verdicts)
        if return_verdicts:
            out["verdicts"] = verdicts
        return out
