"""Accuracy as an `evaluate` metric module, shipped inside hf_tip so that it loads by path, offline."""

import datasets
import evaluate

_DESCRIPTION = "Accuracy: the fraction of predictions equal to their references."
_CITATION = ""
_KWARGS_DESCRIPTION = """
Args:
    predictions (`list[int]`): predicted class indices.
    references (`list[int]`): ground-truth class indices.
Returns:
    accuracy (`float`): in [0, 1].
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Accuracy(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}
            ),
        )

    def _compute(self, predictions, references):
        if len(predictions) != len(references):
            raise ValueError(f"Got {len(predictions)} predictions for {len(references)} references.")
        correct = sum(int(p) == int(r) for p, r in zip(predictions, references, strict=True))
        return {"accuracy": correct / len(references) if len(references) else 0.0}
