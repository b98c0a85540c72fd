"""The metric Space's app (Hugging Face convention for metric Spaces)."""
import evaluate
from evaluate.utils import launch_gradio_widget

module = evaluate.load("chromosomenet_metrics.py")
launch_gradio_widget(module)
