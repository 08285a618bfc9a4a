"""``OUT/batch_report.html``: a batch's takes ranked by label quality, linked to their reports.

Built from each take's ``qa`` summary (``quality_score``: the share of frame and part
labels without any flag, and the flagged frames); failed takes and takes without QA are
listed last with their reason. Plain HTML and CSS, no script: it opens anywhere.
"""

from __future__ import annotations

import html
import os
from pathlib import Path

from pipeline.atomic import atomic_write_text


def ranking(reports: list, out_root: Path) -> list[dict]:
    """One entry per take, best quality first: take, ok, quality_score, flagged_frames, report (relative path), error."""
    entries = []
    for report in reports:
        qa = report.summaries.get("qa", {}) if report.ok else {}
        page = Path(report.output) / "qa" / "report.html" if report.ok else None
        entries.append(
            {
                "take": report.take,
                "ok": report.ok,
                "quality_score": qa.get("quality_score"),
                "flagged_frames": qa.get("flagged_frames"),
                "frames": report.summaries.get("refine", {}).get("frames"),
                "report": os.path.relpath(page, out_root) if page is not None and page.is_file() else None,
                "error": report.error,
            }
        )
    return sorted(entries, key=lambda entry: (entry["quality_score"] is None, -(entry["quality_score"] or 0.0), entry["take"]))


def write_batch_report(out_root: Path, entries: list[dict]) -> Path:
    rows = []
    for rank, entry in enumerate(entries, 1):
        name = html.escape(entry["take"])
        link = f"<a href='{html.escape(entry['report'])}'>{name}</a>" if entry["report"] else name
        score = "-" if entry["quality_score"] is None else f"{entry['quality_score']:.1f} %"
        status = "ok" if entry["ok"] else f"FAILED: {html.escape(entry['error'] or '')}"
        rows.append(
            f"<tr><td>{rank}</td><td class='left'>{link}</td><td>{score}</td><td>{entry['flagged_frames'] if entry['flagged_frames'] is not None else '-'}</td>"
            f"<td>{entry['frames'] if entry['frames'] is not None else '-'}</td><td class='left'>{status}</td></tr>"
        )
    page = (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>Batch report</title><style>"
        "body{font-family:system-ui,sans-serif;margin:1.5em auto;max-width:1100px}table{border-collapse:collapse}"
        "td,th{border:1px solid #ddd;padding:3px 8px;text-align:right}th{background:#f4f4f4}.left{text-align:left}"
        "</style></head><body><h1>Batch report</h1>"
        f"<p>{len(entries)} take(s), {sum(not e['ok'] for e in entries)} failed; ranked by the share of frame and part labels without any QA flag.</p>"
        "<table><tr><th>rank</th><th class='left'>take</th><th>labels without flag</th><th>flagged frames</th><th>frames</th>"
        f"<th class='left'>status</th></tr>{''.join(rows)}</table></body></html>\n"
    )
    return atomic_write_text(Path(out_root) / "batch_report.html", page)
