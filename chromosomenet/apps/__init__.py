"""What a person runs: the ``chromosomenet`` CLI, the Gradio Space (``serve`` over ``engine``) and the
main job (``demo``). Thin layers over the pipeline, training and evaluation."""
