"""``report.html``: the report's Markdown as one self-contained page, pictures embedded as data URIs, so that
it opens offline in any browser and can be mailed or archived as a single file."""

from __future__ import annotations

import base64
import html
import re

from hindsight_ray.core.experiment import ExperimentStore
from hindsight_ray.core.layout import HTML_FILE

_STYLE = """body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:1800px;margin:2em auto;padding:0 2em;
color:#222;line-height:1.45}table{border-collapse:collapse;margin:1em 0;font-size:0.92em}
th,td{border:1px solid #ccc;padding:0.3em 0.6em;text-align:right}th{background:#f3f3f3}
td:first-child,th:first-child{text-align:left}img{max-width:100%;margin:0.6em 0;border:1px solid #eee}
code{background:#f4f4f4;padding:0 0.25em;border-radius:3px}h1{font-size:1.6em}
.plots{display:grid;grid-template-columns:repeat(auto-fit,minmax(min(640px,100%),1fr));gap:0.8em;align-items:start}
.plots img{width:100%;margin:0}.plots img.wide{grid-column:1/-1}"""


_IMAGE = re.compile(r"!\[([^\]]*)\]\(([^)]+)\)")


def _inline(text: str) -> str:
    escaped = re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text))
    return re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", escaped)


def _wide(png: bytes) -> bool:
    """A picture at least three times as wide as it is tall (the trial timeline): it takes a whole row of the
    grid, where its text stays readable, instead of a column."""
    if png[:8] != b"\x89PNG\r\n\x1a\n" or len(png) < 24:
        return False
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    return height > 0 and width >= 3 * height


def _table(rows: list[str]) -> str:
    cells = [[c.strip() for c in row.strip().strip("|").split("|")] for row in rows]
    head, body = cells[0], [r for r in cells[1:] if not all(set(c) <= set("-: ") for c in r)]
    out = ["<table><thead><tr>", *(f"<th>{_inline(c)}</th>" for c in head), "</tr></thead><tbody>"]
    for row in body:
        out += ["<tr>", *(f"<td>{_inline(c)}</td>" for c in row), "</tr>"]
    return "".join([*out, "</tbody></table>"])


def markdown_to_html(markdown: str, store: ExperimentStore) -> str:
    """The subset of Markdown our reports use (headings, paragraphs, tables, images) as a whole page;
    an image is read from the experiment folder and embedded."""
    blocks: list[str] = []
    lines = markdown.splitlines()
    title = "hindsight-ray report"
    index = 0
    while index < len(lines):
        line = lines[index]
        if line.startswith("|"):
            start = index
            while index < len(lines) and lines[index].startswith("|"):
                index += 1
            blocks.append(_table(lines[start:index]))
            continue
        image = _IMAGE.fullmatch(line.strip())
        if image:
            # consecutive pictures side by side, as many as the window's width holds
            pictures = []
            while index < len(lines) and (image := _IMAGE.fullmatch(lines[index].strip())):
                png = store.read_bytes(image.group(2))
                data, wide = (
                    base64.b64encode(png).decode("ascii"),
                    ' class="wide"' if _wide(png) else "",
                )
                pictures.append(
                    f'<img alt="{html.escape(image.group(1))}"{wide} src="data:image/png;base64,{data}">'
                )
                index += 1
            blocks.append(f'<div class="plots">{"".join(pictures)}</div>')
            continue
        if line.startswith("#"):
            level = min(len(line) - len(line.lstrip("#")), 6)
            text = line.lstrip("#").strip()
            title = text if level == 1 else title
            blocks.append(f"<h{level}>{_inline(text)}</h{level}>")
        elif line.strip():
            blocks.append(f"<p>{_inline(line)}</p>")
        index += 1
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{_STYLE}</style></head><body>\n" + "\n".join(blocks) + "\n</body></html>\n"
    )


def write_html(store: ExperimentStore, markdown: str) -> str:
    store.write_bytes(HTML_FILE, markdown_to_html(markdown, store).encode("utf-8"))
    return store.path(HTML_FILE)
