"""index.html of a report folder: the study's numbers and every picture on one page that opens offline.

The page is self-contained HTML with inline CSS; it links only files in its own folder, by relative name, and only
those that exist when it is written (a figure that failed to render is left out, not shown broken).
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path

from uda_trt.runtime.jobs.files import atomic_write_text

INDEX_FILE = "index.html"
_STYLE = (
    "body{font-family:sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}"
    "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right}"
    "th:first-child,td:first-child{text-align:left}img{max-width:100%;border:1px solid #eee;margin:.5em 0}"
    "figcaption{color:#555;font-size:.9em}"
)


def html_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain HTML table; every cell escaped."""
    head = "".join(f"<th>{html.escape(str(cell))}</th>" for cell in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(cell))}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def write_index(
    out: Path,
    title: str,
    intro: str,
    tables: Sequence[tuple[str, str]],
    figures: Sequence[tuple[str, str]],
    links: Sequence[str] = ("report.md", "report.json"),
) -> Path:
    """OUT/index.html: `intro` (plain text), each (heading, HTML table) in `tables`, each (file name, caption) in
    `figures` that exists in OUT, then links to the files in `links` that exist."""
    out = Path(out)
    parts = [f"<h1>{html.escape(title)}</h1>", f"<p>{html.escape(intro)}</p>"]
    for heading, table in tables:
        parts += [f"<h2>{html.escape(heading)}</h2>", table]
    shown = [(name, caption) for name, caption in figures if _is_local_file(out, name)]
    if shown:
        parts.append("<h2>Figures</h2>")
    for name, caption in shown:
        quoted = html.escape(name, quote=True)
        parts.append(
            f'<figure><a href="{quoted}"><img src="{quoted}" alt="{html.escape(caption, quote=True)}"></a>'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>"
        )
    present = [name for name in links if _is_local_file(out, name)]
    if present:
        items = "".join(f'<li><a href="{html.escape(n, quote=True)}">{html.escape(n)}</a></li>' for n in present)
        parts += ["<h2>Files</h2>", f"<ul>{items}</ul>"]
    page = (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{_STYLE}</style></head><body>{''.join(parts)}</body></html>\n"
    )
    path = out / INDEX_FILE
    atomic_write_text(path, page)
    return path


def _is_local_file(out: Path, name: str) -> bool:
    """A plain file directly in OUT (no folders, no absolute paths, no parent references)."""
    return Path(name).name == name and (out / name).is_file()
