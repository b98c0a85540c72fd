"""Markdown pieces shared by the cards and reports (one table format everywhere)."""
from __future__ import annotations


def table(header: list[str], rows: list[list]) -> str:
    return "\n".join(["| " + " | ".join(map(str, header)) + " |", "|" + "---|" * len(header)]
                     + ["| " + " | ".join(map(str, r)) + " |" for r in rows])


def pct(value: float | None) -> str:
    """A fraction as a percentage with 2 decimals; a dash when missing."""
    return "–" if value is None else f"{100 * value:.2f}"
