"""Pure HTML rendering of viewer pages. Every piece of row text goes through `html.escape`:
traces and captions contain `<think>`, `<answer>`, markup and scripts copied from the web."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5em;max-width:1100px;color:#222}
nav a{margin-right:.8em} h1{font-size:1.3em}
article{border:1px solid #ccc;border-radius:6px;padding:.8em 1em;margin:1em 0}
article.dropped{border-left:6px solid #e76f51} article.kept{border-left:6px solid #2a9d8f}
article header{font-weight:600;margin-bottom:.5em}
.drop{background:#fdecea;padding:.4em .6em;border-radius:4px;margin:.4em 0}
img.row{max-width:480px;max-height:360px;border:1px solid #ddd;display:block;margin:.4em 0}
pre{white-space:pre-wrap;word-wrap:break-word;background:#f7f7f7;padding:.5em;margin:.2em 0;
max-height:30em;overflow:auto}
h4{margin:.6em 0 .2em} dl{display:grid;grid-template-columns:max-content auto;gap:.2em 1em}
dt{font-weight:600} dd{margin:0} table{border-collapse:collapse} td,th{border:1px solid #ccc;
padding:.2em .6em;text-align:left} td.n{text-align:right}
"""


def page(title: str, body: str, *, nav: str = "") -> str:
    return (
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>"
        f"<nav>{nav}</nav><h1>{escape(title)}</h1>{body}</body></html>\n"
    )


def link(href: str, text: str) -> str:
    return f'<a href="{escape(href, quote=True)}">{escape(text)}</a>'


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _words(value: Any) -> int:
    return len(_text(value).split())


def row_card(row: Mapping[str, Any], *, image_src: str | None, drop: Mapping[str, Any] | None,
             stage: str, verdicts: Mapping[str, Any], image_note: str = "") -> str:
    """One row. `row` holds the viewer fields (question, answer, trace, caption, pass_rate,
    is_consistent, consistency_analysis, origins); `drop` the rejection (filter, reason, detail)."""
    status = "dropped" if drop else "kept"
    parts = [f'<article class="{status}" id="{escape(_text(row["id"]), quote=True)}">',
             f"<header>{escape(_text(row['id']))} · {status}"
             + (f" at {escape(stage)}" if drop else "") + "</header>"]
    if drop:
        parts.append(
            '<div class="drop"><dl>'
            f"<dt>stage</dt><dd>{escape(stage)}</dd>"
            f"<dt>filter</dt><dd>{escape(_text(drop.get('filter')))}</dd>"
            f"<dt>reason</dt><dd>{escape(_text(drop.get('reason')))}</dd>"
            f"<dt>detail</dt><dd>{escape(_text(drop.get('detail')) or '—')}</dd></dl></div>"
        )
    if image_src:
        parts.append(f'<img class="row" loading="lazy" alt="row image" src="{escape(image_src, quote=True)}">')
    else:
        note = image_note or "no image"
        parts.append(f'<p class="noimage"><em>{escape(note)}</em></p>')
    parts.append(f"<h4>Question</h4><pre>{escape(_text(row.get('question')))}</pre>")
    parts.append(f"<h4>Reference answer</h4><pre>{escape(_text(row.get('answer')))}</pre>")
    trace = row.get("trace")
    origin = f", {row['trace_origin']}" if row.get("trace_origin") else ""
    parts.append(
        f"<details><summary>Trace ({_words(trace)} words{escape(origin)})</summary>"
        f"<pre>{escape(_text(trace)) or '<em>none</em>'}</pre></details>"
    )
    caption = row.get("caption")
    origin = f", {row['caption_origin']}" if row.get("caption_origin") else ""
    parts.append(
        f"<details><summary>Caption ({_words(caption)} words{escape(origin)})</summary>"
        f"<pre>{escape(_text(caption)) or '<em>none</em>'}</pre></details>"
    )
    facts = {"pass rate": row.get("pass_rate"), "is_consistent": row.get("is_consistent"),
             **{k: v for k, v in verdicts.items()}}
    parts.append("<h4>Verdicts</h4><dl>" + "".join(
        f"<dt>{escape(k)}</dt><dd>{escape(_text(v)[:4000]) if v is not None else '—'}</dd>"
        for k, v in facts.items()) + "</dl>")
    analysis = row.get("consistency_analysis")
    if analysis:
        parts.append(f"<details><summary>Consistency analysis</summary><pre>{escape(_text(analysis))}</pre></details>")
    parts.append("</article>")
    return "\n".join(parts)


def counts_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(
            f'<td class="n">{v}</td>' if isinstance(v, int) else f"<td>{v}</td>" for v in row
        ) + "</tr>"
        for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"
