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
h4{margin:.6em 0 .2em} dl.answers{background:#eef6f5;padding:.4em .6em;border-radius:4px}
nav .pages{margin-right:.8em;font-weight:600} nav .numbers a{margin-right:.3em}
pre.tail{max-height:none} dl{display:grid;grid-template-columns:max-content auto;gap:.2em 1em}
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


# How much of the trace's end is shown open: where the answer and the closing tags are.
TRACE_TAIL_CHARS = 800


def _trace_tail(trace: str) -> str:
    """The end of a trace, from a line start where possible (the part a reader judges: the
    final answer, the closing tags a structure rule checks)."""
    if len(trace) <= TRACE_TAIL_CHARS:
        return trace
    tail = trace[-TRACE_TAIL_CHARS:]
    cut = tail.find("\n")
    return "…" + (tail[cut + 1:] if 0 <= cut < 300 else tail)


def row_card(row: Mapping[str, Any], *, image_src: str | None, drop: Mapping[str, Any] | None,
             stage: str, verdicts: Mapping[str, Any], image_note: str = "") -> str:
    """One row, in the order a reader judges it: why it was dropped, the trace's final answer
    against the reference, the image and question, the end of the trace (open), then the whole
    trace and caption (collapsed) and the verdicts. `row` holds the viewer fields (question,
    answer, trace, caption, pass_rate, is_consistent, consistency_analysis, origins); `drop`
    the rejection (filter, reason, detail)."""
    from mmfr_assets.rules.verify.extract import final_answer

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
    trace = _text(row.get("trace"))
    answer = final_answer(trace) if trace else None
    parts.append(
        '<dl class="answers">'
        f"<dt>Final answer (trace)</dt><dd>{escape(answer) if answer is not None else '<em>none found</em>'}</dd>"
        f"<dt>Reference answer</dt><dd>{escape(_text(row.get('answer'))) or '<em>none</em>'}</dd></dl>"
    )
    if image_src:
        parts.append(f'<img class="row" loading="lazy" alt="row image" src="{escape(image_src, quote=True)}">')
    else:
        note = image_note or "no image"
        parts.append(f'<p class="noimage"><em>{escape(note)}</em></p>')
    parts.append(f"<h4>Question</h4><pre>{escape(_text(row.get('question')))}</pre>")
    origin = f", {row['trace_origin']}" if row.get("trace_origin") else ""
    if trace:
        parts.append(f'<h4>End of the trace</h4><pre class="tail">{escape(_trace_tail(trace))}</pre>')
    parts.append(
        f"<details><summary>Whole trace ({_words(trace)} words{escape(origin)})</summary>"
        f"<pre>{escape(trace) or '<em>none</em>'}</pre></details>"
    )
    caption = row.get("caption")
    origin = f", {row['caption_origin']}" if row.get("caption_origin") else ""
    parts.append(
        f"<details><summary>Caption ({_words(caption)} words{escape(origin)})</summary>"
        f"<pre>{escape(_text(caption)) or '<em>none</em>'}</pre></details>"
    )
    def facts(items) -> str:
        return "<dl>" + "".join(
            f"<dt>{escape(k)}</dt><dd>{escape(_text(v)[:4000]) if v is not None else '—'}</dd>"
            for k, v in items) + "</dl>"

    parts.append("<h4>Verdicts</h4>" + facts(
        [("pass rate", row.get("pass_rate")), ("is_consistent", row.get("is_consistent"))]))
    # Each model step's columns (`<table>.<column>`), collapsed under the step's name.
    tables: dict[str, list] = {}
    for key, value in verdicts.items():
        tables.setdefault(key.split(".", 1)[0], []).append((key, value))
    for table, items in tables.items():
        parts.append(f"<details><summary>{escape(table)} ({len(items)} columns)</summary>{facts(items)}</details>")
    analysis = row.get("consistency_analysis")
    if analysis:
        parts.append(f"<details><summary>Consistency analysis</summary><pre>{escape(_text(analysis))}</pre></details>")
    parts.append("</article>")
    return "\n".join(parts)


def page_nav(up: str, number: int, pages: int, file_of) -> str:
    """`↑ views · page 2 of 7 · ← previous 1 2 3 … next →`: every page linked by number."""
    numbers = " ".join(
        f'<strong aria-current="page">{k}</strong>' if k == number else link(file_of(k), str(k))
        for k in range(1, pages + 1)
    )
    return (up + f'<span class="pages">page {number} of {pages}</span> '
            + (link(file_of(number - 1), "← previous") if number > 1 else "")
            + f' <span class="numbers">{numbers}</span> '
            + (link(file_of(number + 1), "next →") if number < pages else ""))


def counts_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(
            f'<td class="n">{v}</td>' if isinstance(v, int) else f"<td>{v}</td>" for v in row
        ) + "</tr>"
        for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"
