"""ChromosomeNet metrics for `evaluate`: `evaluate.load("metrics/chromosomenet_metrics")` (offline), or as a Hub metric Space.

A thin adapter: every number comes from `chromosomenet.metrics.classification.full_report`, the one source of truth
that `chromosomenet evaluate` and the benchmark report use.
"""
import datasets
import evaluate

from chromosomenet.metrics.classification import full_report

_DESCRIPTION = """The ChromosomeNet paper's metrics for 24-class chromosome classification (classes 0..23 =
chromosomes 1..22, X, Y): accuracy, macro precision, sensitivity (recall), specificity TN/(TN+FP) and F1
over every class in the references or the predictions (scikit-learn's default), the paper's specificity formula TN/(TP+TN), Cohen's kappa,
per-class accuracy; with `probabilities`, top-2 accuracy, expected calibration error (15 bins) and NLL;
a 95 % bootstrap interval of accuracy that resamples `groups` (cases) when given, else instances."""

_KWARGS_DESCRIPTION = """
Args:
    predictions (list of int): predicted class ids, 0..23.
    references (list of int): true class ids, 0..23.
    probabilities (list of list of float, optional): one row of 24 class probabilities per instance.
    groups (list of str, optional): the case (patient) of each instance, for the bootstrap interval.
    n_boot (int, optional): bootstrap resamples (default 1000). seed (int, optional): default 0.
Returns:
    dict: accuracy, precision, sensitivity, specificity, specificity_paper_formula, f1, kappa,
    per_class_accuracy, support, no_support, top2_accuracy, ece, nll, accuracy_ci95, ...
Example:
    >>> metric = evaluate.load("metrics/chromosomenet_metrics")
    >>> metric.compute(predictions=[0, 1, 1], references=[0, 1, 2])["accuracy"]
    0.6666666666666666
"""

_CITATION = """@article{lin2022chromosomenet,
  title={ChromosomeNet: A massive dataset enabling benchmarking and building baselines of clinical chromosome classification},
  author={Lin, Chengchuang and Chen, Hanbiao and others},
  journal={Computational Biology and Chemistry},
  year={2022}, doi={10.1016/j.compbiolchem.2022.107731}
}"""


def _features(*optional: str) -> datasets.Features:
    kinds = {"probabilities": datasets.Sequence(datasets.Value("float64")), "groups": datasets.Value("string")}
    return datasets.Features({"predictions": datasets.Value("int32"), "references": datasets.Value("int32"),
                              **{k: kinds[k] for k in optional}})


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class ChromosomeNet(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION, citation=_CITATION, inputs_description=_KWARGS_DESCRIPTION,
            # evaluate checks the inputs against the first layout, then picks the one matching them
            features=[_features(), _features("probabilities"), _features("groups"),
                      _features("probabilities", "groups")],
            reference_urls=["https://doi.org/10.1016/j.compbiolchem.2022.107731"],
        )

    def _compute(self, predictions, references, probabilities=None, groups=None, n_boot=1000, seed=0):
        return full_report(references, predictions, probabilities, groups=groups, n_boot=n_boot, seed=seed)
