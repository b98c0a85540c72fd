"""The trained models that ship with chromosomenet: one timm Hub model repo folder each.

Installed as the package ``chromosomenet.shipped_models`` (pyproject's package-dir maps it onto this
folder), so the default classifier and the default detector come with ``pip install``; the others stay
in the checkout. No code here: ``chromosomenet.models.shipped`` finds and lists them.
"""
