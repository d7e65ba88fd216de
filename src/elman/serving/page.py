"""``GET /``: one self-contained HTML page (no scripts, no external files).

The model card as a table, then one inline SVG picture per series: the recent values and
the latest forecast after them.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from typing import Any, NamedTuple

WIDTH, HEIGHT, PAD = 420, 150, 28  # picture size and margin, in pixels


class Picture(NamedTuple):
    """What one series' picture shows (its first target)."""

    sid: str
    version: int
    recent: list[float]
    forecast: list[float]
    first: str  # stamp of the first recent value
    last: str  # stamp of the last forecast step


def page(card: dict[str, Any], pictures: Sequence[Picture], hidden: int) -> str:
    """The whole page as text; ``hidden`` series are counted but not drawn."""
    rows = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(_text(v))}</td></tr>"
        for k, v in card.items()
    )
    figures = "".join(_figure(p) for p in pictures)
    more = (
        f"<p>{hidden} more series are not drawn; see <code>/v1/series/ID</code>.</p>"
        if hidden
        else ""
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>elman serve</title>
<style>
body{{font:14px system-ui,sans-serif;margin:24px;color:#222}}
table{{border-collapse:collapse;margin-bottom:16px}}
th,td{{text-align:left;padding:2px 10px;border-bottom:1px solid #ddd;font-weight:normal}}
th{{color:#666}} figure{{display:inline-block;margin:6px;border:1px solid #ddd;padding:6px}}
figcaption{{font-size:12px;color:#444}} .key span{{margin-right:12px}}
</style></head><body>
<h1>elman serve</h1>
<h2>Model</h2><table>{rows}</table>
<h2>Series</h2>
<p class="key"><span style="color:#1f77b4">&#9644; recent values</span>
<span style="color:#d62728">&#9644; latest forecast</span></p>
{figures}{more}
</body></html>
"""


def _text(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}: {v}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value) or "-"
    return "-" if value is None else str(value)


def _figure(p: Picture) -> str:
    values = [v for v in p.recent + p.forecast if math.isfinite(v)]
    low, high = (min(values), max(values)) if values else (0.0, 1.0)
    span = (high - low) or 1.0
    n = max(len(p.recent) + len(p.forecast) - 1, 1)

    def xy(i: int, v: float) -> str:
        x = PAD + (WIDTH - 2 * PAD) * i / n
        y = HEIGHT - PAD - (HEIGHT - 2 * PAD) * (v - low) / span
        return f"{x:.1f},{y:.1f}"

    past = " ".join(xy(i, v) for i, v in enumerate(p.recent))
    start = len(p.recent) - 1  # the forecast line starts at the last value
    ahead = [p.recent[-1], *p.forecast] if p.recent else p.forecast
    future = " ".join(xy(start + i, v) for i, v in enumerate(ahead))
    sid, last = html.escape(p.sid), html.escape(p.last)
    return f"""<figure><svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" \
role="img" aria-label="series {sid}">
<rect x="0" y="0" width="{WIDTH}" height="{HEIGHT}" fill="#fff"/>
<line x1="{PAD}" y1="{HEIGHT - PAD}" x2="{WIDTH - PAD}" y2="{HEIGHT - PAD}" stroke="#999"/>
<line x1="{PAD}" y1="{PAD}" x2="{PAD}" y2="{HEIGHT - PAD}" stroke="#999"/>
<text x="2" y="{PAD}" font-size="10">{high:.4g}</text>
<text x="2" y="{HEIGHT - PAD}" font-size="10">{low:.4g}</text>
<text x="{PAD}" y="{HEIGHT - 8}" font-size="10">{html.escape(p.first)}</text>
<text x="{WIDTH - PAD}" y="{HEIGHT - 8}" font-size="10" text-anchor="end">{last}</text>
<polyline points="{past}" fill="none" stroke="#1f77b4" stroke-width="1.5"/>
<polyline points="{future}" fill="none" stroke="#d62728" stroke-width="1.5"/>
</svg><figcaption>{sid} &middot; state version {p.version}</figcaption></figure>
"""
