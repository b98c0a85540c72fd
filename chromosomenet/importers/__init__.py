"""Importers: a source release or a lab's export into the paper's raw layout (0/ … 23/ canvases +
metadata.csv). They call the pipeline's separation stage to cut each chromosome out of its metaphase."""
