"""The runtime pipeline, one module per stage, read top to bottom:

    metaphase ─detect─▶ boxes ─separate─▶ crops ─predict─▶ probabilities ─assign─▶ calls ─render─▶ karyogram

``metaphase`` (bare images) and ``cells`` (a dataset split, a folder of crops) chain the stages;
entry points join at the stage their input belongs to (docs/architecture.md).
"""
