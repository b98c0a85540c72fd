"""The prior methods of the ChromosomeNet paper's Table 6 as data: citations and the accuracies it prints.

The models themselves are in :mod:`.classic` (registered with timm under the same names).
"""
from __future__ import annotations

from typing import Any

# Table 6 as printed. name: (Method, [ref], Reported %, Evaluated % (on ChromosomeNet), Improvement %)
_TABLE6: dict[str, tuple[str, int, float, float, float]] = {
    "chromosomenet_deepcnn":    ("Deep CNN", 33, 86.7, 92.09, 5.39),
    "chromosomenet_vanillacnn": ("Vanilla CNN", 41, 92.50, 95.48, 2.98),
    "chromosomenet_hucnn":      ("CNN", 8, 93.79, 94.70, 0.91),
    "chromosomenet_chromnet2":  ("ChromNet2", 30, 91.30, 95.23, 3.93),
    "chromosomenet_cirnet":     ("CIR-Net", 20, 95.98, 98.64, 2.66),
    "chromosomenet_mixnet":     ("MixedNet", 22, 98.73, 98.92, 0.19),
}
# The ChromosomeNet paper's reference list: (authors, year, title, venue).
_CITATIONS: dict[str, tuple[str, int, str, str]] = {
    "chromosomenet_deepcnn": (
        "Sharma, M., Saha, O., Sriraman, A., Hebbalaguppe, R., Vig, L., Karande, S.", 2017,
        "Crowdsourcing for chromosome segmentation and deep classification", "CVPR Workshops, pp. 34-41"),
    "chromosomenet_vanillacnn": (
        "Zhang, W., Song, S., Bai, T., Zhao, Y., Ma, F., Su, J., Yu, L.", 2018,
        "Chromosome classification with convolutional neural network based deep learning",
        "CISP-BMEI 2018, IEEE, pp. 1-5"),
    "chromosomenet_hucnn": (
        "Hu, X., Yi, W., Jiang, L., Wu, S., Zhang, Y., Du, J., Ma, T., Wang, T., Wu, X.", 2019,
        "Classification of metaphase chromosomes using deep convolutional neural network",
        "Journal of Computational Biology 26, 473-484"),
    "chromosomenet_chromnet2": (
        "Remya, R., Hariharan, S., Vinod, V., Fernandez, D.J.W., Ajmal, N.M., Gopakumar, C.", 2020,
        "A comprehensive study on convolutional neural networks for chromosome classification",
        "ACCTHPA 2020, IEEE, pp. 287-292"),
    "chromosomenet_cirnet": (
        "Lin, C., Zhao, G., Yang, Z., Yin, A., Wang, X., Guo, L., Chen, H., Ma, Z., Zhao, L., Luo, H., "
        "et al.", 2020, "CIR-Net: automatic classification of human chromosome based on Inception-ResNet "
        "architecture", "IEEE/ACM Transactions on Computational Biology and Bioinformatics"),
    "chromosomenet_mixnet": (
        "Lin, C., Zhao, G., Yin, A., Guo, L., Chen, H., Zhao, L.", 2020, "MixNet: A better promising "
        "approach for chromosome classification based on aggregated residual architecture",
        "CVIDL 2020, IEEE, pp. 313-318"),
}
_NOTES = {"chromosomenet_mixnet": ("Table 6 cites MixedNet as [22]; Section 5.5 credits the 98.73% to [21], "
                                   "while Section 2 says [21] reported 99.53% (25 classes)")}

PRIOR_METHODS: dict[str, dict[str, Any]] = {
    name: {"label": label, "ref": ref, "authors": _CITATIONS[name][0], "year": _CITATIONS[name][1],
           "title": _CITATIONS[name][2], "venue": _CITATIONS[name][3], "reported_acc": reported,
           "chromosomenet_acc": evaluated, "improvement": improvement, "note": _NOTES.get(name, "")}
    for name, (label, ref, reported, evaluated, improvement) in _TABLE6.items()
}
