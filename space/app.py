"""ChromosomeNet Space: `python space/app.py [--model SPEC] [--detector SPEC] [--host 127.0.0.1] [--port 7860]`.

Runs from the repository root, from inside `space/`, or as a Hugging Face Space (with the
`chromosomenet` package installed or copied next to this file). The model comes from `--model`,
else `$CHROMOSOMENET_MODEL`, else the shipped model (`models/chromosomenet-view-resnet10t-half`); without
one the page says how to get one. The detector for bare metaphases: `--detector`, else
`$CHROMOSOMENET_DETECTOR`, else `models/chromosomenet-detector-resnet10t-half`. All the work is in
`chromosomenet/apps/serve.py`.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
if not (HERE / "chromosomenet").is_dir() and (HERE.parent / "chromosomenet").is_dir():
    sys.path.insert(0, str(HERE.parent))  # a repository checkout: use its package

from chromosomenet.apps.serve import ENV_DETECTOR, ENV_MODEL, launch  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="ChromosomeNet demo: one chromosome, or a whole cell.")
    ap.add_argument("--model", default=os.environ.get(ENV_MODEL),
                    help=f"local-dir:PATH, a run folder, or hf-hub:ORG/NAME (default: ${ENV_MODEL}, else "
                         "the shipped models/chromosomenet-view-resnet10t-half)")
    ap.add_argument("--detector", default=os.environ.get(ENV_DETECTOR),
                    help=f"for bare metaphases: local-dir:PATH or hf-hub:ORG/NAME (default: ${ENV_DETECTOR}, else "
                         "the shipped models/chromosomenet-detector-resnet10t-half)")
    ap.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
                    help="address to bind (default 127.0.0.1; 0.0.0.0 exposes it to the network)")
    ap.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", "7860")))
    a = ap.parse_args(argv)
    launch(a.model, host=a.host, port=a.port, detector=a.detector)


if __name__ == "__main__":
    main()
