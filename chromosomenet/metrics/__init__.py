"""Numbers and their pictures: the paper's classification metrics from a confusion matrix
(``classification``), the detector's COCO-style box metrics (``detection``), matplotlib figures."""
