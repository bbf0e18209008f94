"""Printing: Markdown tables (pasted as they are into the README) and target verdicts."""

from __future__ import annotations

from collections.abc import Sequence

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

console = Console(width=200, highlight=False, soft_wrap=True)


def heading(title: str) -> None:
    console.print(Text(f"\n### {title}\n"))


def note(text: str) -> None:
    console.print(Text(text))


def table(columns: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """Print a Markdown table; right-aligns every column but the first."""
    out = Table(box=box.MARKDOWN, show_edge=True, pad_edge=True)
    for index, column in enumerate(columns):
        out.add_column(Text(column), justify="left" if index == 0 else "right")
    for row in rows:
        out.add_row(*(Text(str(cell)) for cell in row))
    console.print(out)


def rate(value: float) -> str:
    """Events per second, three significant figures."""
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def ms(value: float) -> str:
    return f"{value:.3f}" if value < 10 else f"{value:.1f}"


def ratio(value: float) -> str:
    return f"{value:.2f}x"


def verdict(met: bool) -> str:
    return "met" if met else "NOT met"
