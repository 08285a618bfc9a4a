"""``OUT/batch_summary.json`` and ``OUT/batch_report.html``: every take under ``OUT``
ranked by label quality, worst first, linked to its report.

Rebuilt from what is on disk, so they cover every take output in ``OUT`` (a folder
with ``run.json``), not just the last ``run``: each take's ``qa`` summary
(``quality_score``: the share of frame and part labels without any flag, the same per
part, the flagged frames, the reason flagging the most labels, the camera that is the
culprit of the most flagged frames, the cameras offset for the whole take) and its
frame count; a take whose QA has no output, or that failed in the run being recorded,
is listed first with its reason (it needs a look before any other). ``run`` (:func:`workflow.runner.run_batch`) writes them after its takes, and
``report`` after rescoring one. The page is plain HTML and CSS, no script: it opens
anywhere.
"""

from __future__ import annotations

import html
import json
import os
from pathlib import Path

from pipeline.artifacts import RUN_FILE, ArtifactStore
from pipeline.atomic import atomic_write_text

SUMMARY_FILE = "batch_summary.json"
REPORT_FILE = "batch_report.html"


def _stored_entry(folder: Path, out_root: Path) -> dict:
    """A take output's entry from its stored stage outputs."""
    store = ArtifactStore(folder)
    qa, refine = store.record("qa"), store.record("refine")
    summary = qa.manifest.get("summary", {}) if qa is not None else {}
    page = folder / "qa" / "report.html"
    return {
        "take": folder.name,
        "ok": qa is not None,
        "quality_score": summary.get("quality_score"),
        "flagged_frames": summary.get("flagged_frames"),
        "cameras_offset": summary.get("cameras_offset", []),
        "quality_by_part": summary.get("label_quality_percent_by_part", {}),
        "top_reason": summary.get("top_reason"),
        "top_reason_labels": summary.get("top_reason_labels"),
        "culprit_camera": summary.get("culprit_camera"),
        "culprit_camera_frames": summary.get("culprit_camera_frames"),
        "frames": refine.manifest.get("summary", {}).get("frames") if refine is not None else None,
        "report": os.path.relpath(page, out_root) if qa is not None and page.is_file() else None,
        "error": None if qa is not None else "no QA output (the take's stages have not all finished)",
    }


def ranking(out_root: Path, reports: list[dict] = ()) -> list[dict]:
    """One entry per take under ``out_root`` and per take of ``reports`` (this run's take
    reports, as dicts), worst first (failed takes, then the lowest quality_score): take,
    ok, quality_score, flagged_frames, cameras_offset, quality_by_part, top_reason (and
    its labels), culprit_camera (and its frames), frames, report (relative path), error.
    A take that failed in ``reports`` is failed here, whatever older outputs it has."""
    out_root = Path(out_root)
    entries = {}
    if out_root.is_dir():
        for folder in sorted(path for path in out_root.iterdir() if (path / RUN_FILE).is_file()):
            entries[folder.name] = _stored_entry(folder, out_root)
    for report in reports:
        if not report["ok"]:
            entries[report["take"]] = {"take": report["take"], "ok": False, "quality_score": None, "flagged_frames": None, "cameras_offset": [],
                                       "quality_by_part": {}, "top_reason": None, "top_reason_labels": None, "culprit_camera": None,
                                       "culprit_camera_frames": None, "frames": None, "report": None, "error": report["error"]}  # fmt: skip
    return sorted(entries.values(), key=lambda entry: (entry["quality_score"] is not None, entry["quality_score"] or 0.0, entry["take"]))


def write_batch_files(out_root: Path, reports: list[dict] | None = None) -> dict:
    """Rebuild ``batch_summary.json`` and ``batch_report.html`` of ``out_root`` from every take
    output in it. ``reports``: the take reports of the run being recorded (None: keep the
    ones the summary holds, e.g. after ``report`` rescored a take). Returns the summary."""
    out_root = Path(out_root)
    if reports is None:
        try:
            reports = json.loads((out_root / SUMMARY_FILE).read_text(encoding="utf-8")).get("reports", [])
        except (FileNotFoundError, json.JSONDecodeError, AttributeError):
            reports = []
    ranked = ranking(out_root, reports)
    summary = {"takes": len(ranked), "failed": sum(not entry["ok"] for entry in ranked), "ranking": ranked, "reports": reports}
    atomic_write_text(out_root / SUMMARY_FILE, json.dumps(summary, indent=2) + "\n")
    write_batch_report(out_root, ranked)
    return summary


def _percent(value) -> str:
    return "-" if value is None else f"{value:.1f} %"


def write_batch_report(out_root: Path, entries: list[dict]) -> Path:
    """The batch page: ``entries`` in their order (worst first), a column per part."""
    parts = sorted({part for entry in entries for part in entry.get("quality_by_part") or {}}, key=lambda part: (part != "body", part))
    rows = []
    for rank, entry in enumerate(entries, 1):
        name = html.escape(entry["take"])
        link = f"<a href='{html.escape(entry['report'])}'>{name}</a>" if entry["report"] else name
        status = "ok" if entry["ok"] else f"FAILED: {html.escape(entry['error'] or '')}"
        if entry.get("cameras_offset"):
            status += f"; camera(s) offset: {html.escape(', '.join(entry['cameras_offset']))}"
        by_part = entry.get("quality_by_part") or {}
        reason = f"{html.escape(entry['top_reason'])} ({entry.get('top_reason_labels')} labels)" if entry.get("top_reason") else "-"
        camera = f"{html.escape(entry['culprit_camera'])} ({entry.get('culprit_camera_frames')} frames)" if entry.get("culprit_camera") else "-"
        rows.append(
            f"<tr class='take' data-take='{name}'><td>{rank}</td><td class='left'>{link}</td><td>{_percent(entry['quality_score'])}</td>"
            + "".join(f"<td>{_percent(by_part.get(part))}</td>" for part in parts)
            + f"<td>{entry['flagged_frames'] if entry['flagged_frames'] is not None else '-'}</td><td class='left'>{reason}</td><td class='left'>{camera}</td>"
            f"<td>{entry['frames'] if entry['frames'] is not None else '-'}</td><td class='left'>{status}</td></tr>"
        )
    page = (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>Batch report</title><style>"
        "body{font-family:system-ui,sans-serif;margin:1.5em auto;max-width:1300px}table{border-collapse:collapse}"
        "td,th{border:1px solid #ddd;padding:3px 8px;text-align:right}th{background:#f4f4f4}.left{text-align:left}"
        "</style></head><body><h1>Batch report</h1>"
        f"<p>{len(entries)} take(s), {sum(not e['ok'] for e in entries)} failed; worst first: failed takes, then by the share of frame and "
        "part labels without any QA flag. Top reason: the reason flagging the most frame and part labels; camera: the culprit camera of the "
        "most flagged frames (the one that tripped the most checks in each stretch).</p>"
        "<table><tr><th>rank</th><th class='left'>take</th><th>labels without flag</th>"
        + "".join(f"<th>{html.escape(part)}</th>" for part in parts)
        + "<th>flagged frames</th><th class='left'>top reason</th><th class='left'>camera</th><th>frames</th>"
        f"<th class='left'>status</th></tr>{''.join(rows)}</table></body></html>\n"
    )
    return atomic_write_text(Path(out_root) / REPORT_FILE, page)
