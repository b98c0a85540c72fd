"""`chromosomenet <verb>`: thin argument parsing over the library; errors become one stderr line.

Verbs by group: the dataset (cli_data), the models (cli_models), a laboratory's own input and deployment
(cli_lab), karyotyping (cli_cells)."""
from __future__ import annotations

import argparse
import sys

from ..errors import ChromosomeNetError
from .cli_cells import add_cell_parsers
from .cli_data import add_data_parsers
from .cli_lab import add_lab_parsers
from .cli_models import add_model_parsers


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="chromosomenet", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="verb", required=True)
    for add in (add_data_parsers, add_model_parsers, add_lab_parsers, add_cell_parsers):
        add(sub)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        args.func(args)
    except ChromosomeNetError as e:
        print(f"chromosomenet {args.verb}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"chromosomenet {args.verb}: interrupted; nothing half-written was kept", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
