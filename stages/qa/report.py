"""The take report: one self-contained HTML file (plotly, embedded; opens from disk offline).

Sections: the quality summary (metrics.json in tables), a timeline of missing and
flagged data per part and reason, the reprojection error per camera and joint, the
views per joint over time, bone lengths before and after refine, the 3D trajectory
with the cameras, and the flagged stretches with the culprit camera, each reason's
value against its threshold, a labelled thumbnail of that camera at the frame it is
furthest over and links to the overlay videos at that frame's centre.

The review player above the table holds one paused video per view (the overlay set
holding the frame; no autoplay): clicking a row (or the timeline) seeks every view to
the centre of the stretch's first frame (``(frame - set start + 0.5) / fps``; the
thumbnail: its frame), the arrow keys step one frame. Plotly's JavaScript is embedded
once; nothing is fetched from the network (the videos are files beside the report).
"""

from __future__ import annotations

import base64
import html
import json
import warnings
from dataclasses import dataclass

import numpy as np

from fitting import skeleton
from fitting.quality import PART_NAMES, REASON_TESTS, REASONS, VIEW_REASONS, FlagStretch, QualityFlags

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em auto; max-width: 1400px; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 1.6em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.5em 0; font-size: 0.9em; }
td, th { border: 1px solid #ddd; padding: 3px 8px; text-align: right; }
th { background: #f4f4f4; } td.left, th.left { text-align: left; }
.score { font-size: 2em; font-weight: bold; }
tr.highlight { background: #fff3b0; }
img.thumb { max-height: 200px; }
ul.evidence { margin: 0; padding-left: 1.1em; text-align: left; } ul.evidence small { color: #666; }
.plot { min-height: 360px; }
tr.stretch { cursor: pointer; }
#player { position: sticky; top: 0; z-index: 10; background: #fff; border-bottom: 1px solid #ddd; padding: 4px 0; }
#player .views { display: flex; flex-wrap: wrap; gap: 6px; }
#player figure { margin: 0; } #player figcaption { font-size: 0.8em; color: #555; }
#player video { height: 150px; background: #000; } img.legend { height: 150px; }
#player .bar { font-size: 0.95em; margin-bottom: 4px; } #player .bar b { font-size: 1.2em; }
"""

_SCRIPT = """
// Highlight the most severe listed stretch of the part that overlaps frames [first, stop).
function showStretch(first, stop, part) {
  const rows = document.querySelectorAll('tr.stretch');
  let best = null;
  rows.forEach(function (row) {
    row.classList.remove('highlight');
    const start = +row.dataset.start, end = +row.dataset.stop;
    if ((part === null || row.dataset.part === part) && start < stop && end > first && best === null) best = row;
  });
  if (best) { best.classList.add('highlight'); best.scrollIntoView({behavior: 'smooth', block: 'center'}); }
  return best;
}
// The review player: one paused video per view, all at the centre of one frame.
const review = JSON.parse(document.getElementById('review-data').textContent);
let reviewFrame = null, reviewSet = null;
function overlaySetFor(frame) {
  let best = null;
  review.sets.forEach(function (set) {
    if (set.start <= frame && frame < set.stop && (best === null || set.stop - set.start < best.stop - best.start)) best = set;
  });
  return best;
}
function seekFrame(frame) {
  frame = Math.max(0, Math.min(review.frames - 1, Math.round(frame)));
  const set = overlaySetFor(frame);
  const label = document.getElementById('player-frame');
  reviewFrame = frame;
  if (label) label.textContent = String(frame);
  if (set === null) {
    document.getElementById('player-note').textContent = review.sets.length ? 'frame ' + frame + ' is in no overlay video' : '';
    return false;
  }
  document.getElementById('player-note').textContent = set.stop - set.start < review.frames ? 'overlays of frames ' + set.start + '-' + (set.stop - 1) : '';
  document.querySelectorAll('video.review').forEach(function (video) {
    const file = set.files[video.dataset.view];
    if (set !== reviewSet) {
      if (file) { video.src = file; video.parentElement.style.display = ''; } else { video.removeAttribute('src'); video.parentElement.style.display = 'none'; }
    }
    if (!file) return;
    video.pause();
    video.currentTime = (frame - set.start + 0.5) / review.fps;  // the centre of the frame
  });
  reviewSet = set;
  return true;
}
function stepFrame(delta) { return seekFrame((reviewFrame === null ? 0 : reviewFrame) + delta); }
document.addEventListener('keydown', function (event) {
  if (event.target && /^(INPUT|TEXTAREA|SELECT)$/.test(event.target.tagName)) return;
  if (event.key === 'ArrowRight' || event.key === 'ArrowLeft') {
    event.preventDefault();
    stepFrame(event.key === 'ArrowRight' ? 1 : -1);
  }
});
document.addEventListener('DOMContentLoaded', function () {
  const timeline = document.getElementById('plot-timeline');
  if (timeline && timeline.on) {
    timeline.on('plotly_click', function (event) {
      const point = event.points[0];
      const starts = point.data.x;
      const size = starts.length > 1 ? starts[1] - starts[0] : 1;  // frames per column
      const row = showStretch(Math.round(point.x), Math.round(point.x) + size, String(point.y).split(':')[0]);
      seekFrame(row ? Math.max(+row.dataset.start, Math.round(point.x)) : Math.round(point.x));
    });
  }
  document.querySelectorAll('tr.stretch').forEach(function (row) {
    row.addEventListener('click', function (event) {
      if (event.target.closest('a')) return;  // the overlay links open the videos
      document.querySelectorAll('tr.stretch').forEach(function (other) { other.classList.remove('highlight'); });
      row.classList.add('highlight');
      seekFrame(event.target.closest('img.thumb') ? +row.dataset.frame : +row.dataset.start);
    });
  });
  if (review.sets.length) seekFrame(review.first);
});
"""


@dataclass(frozen=True)
class ReportData:
    """Everything the report shows (arrays of one take).

    ``quality``: the flags and their evidence (:class:`fitting.quality.QualityFlags`);
    ``points (frames, 59, 3)`` the refined joints (m); ``present`` / ``filled (frames, 59)``;
    ``num_views (frames, 59)``; ``bone_lengths_before (frames, bones)`` m (triangulated),
    ``bone_lengths_after (bones,)`` m; ``trajectory``: name -> ``(frames, 3)`` m;
    ``cameras``: name -> ``(3,)`` centre; ``ego_path (frames, 3)`` or None;
    ``stretches`` most severe first; ``thumbnails``: ``(frame, part, view)`` -> (JPEG
    bytes, the camera shown);
    ``overlay_sets``: the overlay videos beside the report, ``((start, stop), {view: file
    name})`` per set of frames (the whole take, or ranges drawn by ``report --frames``);
    ``max_columns``: time plots are binned to at most this many columns; ``max_rows``:
    flagged stretches listed at most; ``ramp_px``: the overlays' colour ramp (the flag
    threshold, red), for the legend.
    """

    take_name: str
    fps: float
    metrics: dict
    camera_names: list[str]
    quality: QualityFlags
    points: np.ndarray
    present: np.ndarray
    filled: np.ndarray
    num_views: np.ndarray
    bone_lengths_before: np.ndarray
    bone_lengths_after: np.ndarray
    trajectory: dict[str, np.ndarray]
    cameras: dict[str, np.ndarray]
    ego_path: np.ndarray | None
    stretches: list[FlagStretch]
    thumbnails: dict[tuple[int, int, int], tuple[bytes, str]]
    overlay_sets: list[tuple[tuple[int, int], dict[str, str]]]
    max_columns: int
    max_rows: int
    ramp_px: tuple[float, float]

    @property
    def flags(self) -> np.ndarray:
        """``(frames, parts, reasons)`` bool."""
        return self.quality.flags


def _bins(frames: int, max_columns: int) -> tuple[np.ndarray, int]:
    """Bin edges over frames so that there are at most ``max_columns`` bins, and the bin size."""
    size = max(1, int(np.ceil(frames / max_columns)))
    return np.arange(0, frames, size), size


def _binned(values: np.ndarray, size: int, how: str) -> np.ndarray:
    """``values (frames, ...)`` reduced over bins of ``size`` frames (``max`` / ``min`` / ``mean``,
    NaN ignored; NaN for a bin without a value)."""
    frames = values.shape[0]
    padded_frames = -(-frames // size) * size
    fill = {"max": -np.inf, "min": np.inf, "mean": np.nan}[how]
    padded = np.full((padded_frames,) + values.shape[1:], fill, dtype=np.float64)
    padded[:frames] = values
    blocks = padded.reshape((-1, size) + values.shape[1:])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a block of NaN only gives NaN, as wanted
        return {"max": np.nanmax, "min": np.nanmin, "mean": np.nanmean}[how](blocks, axis=1)


def _figure_html(figure, div_id: str) -> str:
    return figure.to_html(full_html=False, include_plotlyjs=False, div_id=div_id, config={"displaylogo": False, "responsive": True})


def timeline_rows(data: ReportData) -> list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]:
    """The timeline's rows: only the (part, reason) pairs that flag some frame, and for a
    reason one view trips, a row per view that tripped it (``part: reason · camera``):
    ``(label, flagged (frames,) bool, value (frames,), threshold (frames,))``."""
    quality = data.quality
    rows = []
    for p, part in enumerate(PART_NAMES):
        for r, reason in enumerate(REASONS):
            if not quality.flags[:, p, r].any():
                continue
            if reason in VIEW_REASONS:
                k = VIEW_REASONS.index(reason)
                for v in np.flatnonzero(quality.view_tripped[:, :, p, k].any(axis=1)):
                    rows.append(
                        (
                            f"{part}: {reason} · {data.camera_names[v]}",
                            quality.view_tripped[v, :, p, k],
                            quality.view_value[v, :, p, k],
                            quality.view_threshold[v, :, p, k],
                        )
                    )
            else:
                rows.append((f"{part}: {reason}", quality.flags[:, p, r], quality.value[:, p, r], quality.threshold[:, p, r]))
    return rows


def timeline_figure(data: ReportData):
    """Flagged data over time: a row per part and reason that occurs (per camera for the
    reasons one view trips); hover: the column's frames and its most extreme value
    against the threshold (white: fine)."""
    import plotly.graph_objects as go

    starts, size = _bins(data.flags.shape[0], data.max_columns)
    rows = timeline_rows(data)
    if not rows:
        figure = go.Figure()
        figure.update_layout(title="No frame is flagged", height=160)
        return figure
    z, text = [], []
    for label, flagged, value, threshold in rows:
        reason = label.split(": ", 1)[1].split(" · ")[0]
        test = REASON_TESTS[reason]
        shown = np.where(flagged, value, np.nan).astype(np.float64)
        extreme = _binned(shown, size, "min" if test.comparison == "<" else "max")
        limit = _binned(np.where(flagged, threshold, np.nan).astype(np.float64), size, "mean")
        z.append(_binned(flagged.astype(float), size, "max"))
        text.append([test.describe(v, t) if np.isfinite(v) else "" for v, t in zip(extreme, limit)])
    figure = go.Figure(
        go.Heatmap(z=np.array(z), x=starts, y=[row[0] for row in rows], text=text, colorscale=[[0, "#ffffff"], [1, "#d62728"]], showscale=False,
                   zmin=0, zmax=1, xgap=0, ygap=1, hovertemplate="frame %{x}<br>%{y}<br>%{text}<extra></extra>")
    )  # fmt: skip
    figure.update_layout(title=f"Flagged data ({size} frame(s) per column; click to see the stretch)", height=140 + 22 * len(rows),
                         margin=dict(l=300, r=20, t=50, b=40), xaxis_title="frame", yaxis=dict(autorange="reversed", dtick=1))  # fmt: skip
    return figure


def reprojection_figure(data: ReportData):
    """Median inlier reprojection error (px) per camera and joint."""
    import plotly.graph_objects as go

    table = data.metrics["reprojection_error_px_by_camera_and_joint"]
    z = [[table[camera][joint] for joint in skeleton.JOINT_NAMES] for camera in data.camera_names]
    figure = go.Figure(go.Heatmap(z=z, x=list(skeleton.JOINT_NAMES), y=data.camera_names, colorscale="Reds", colorbar_title="px",
                                  hovertemplate="%{y} %{x}: %{z:.2f} px<extra></extra>"))  # fmt: skip
    figure.update_layout(title="Reprojection error per camera and joint (median of inliers, px)", height=160 + 40 * len(data.camera_names),
                         margin=dict(l=80, r=20, t=50, b=140))  # fmt: skip
    return figure


def views_figure(data: ReportData):
    """Views that agreed with each joint, over time (0: missing or gap-filled): every joint
    labelled, grouped by part (lines between), one discrete colour per view count."""
    import plotly.graph_objects as go

    starts, size = _bins(data.num_views.shape[0], data.max_columns)
    views = np.where(data.present & ~data.filled, data.num_views, 0).astype(float)
    z = _binned(views, size, "min").T
    most = max(1, len(data.camera_names))
    palette = ["#d9d9d9", "#d62728", "#ff7f0e", "#bcbd22", "#2ca02c", "#17becf", "#1f77b4", "#9467bd", "#8c564b"]
    scale = []
    for count in range(most + 1):  # a flat band per count: a discrete colour scale
        colour = palette[min(count, len(palette) - 1)]
        scale += [[count / (most + 1), colour], [(count + 1) / (most + 1), colour]]
    labels = [f"{part} · {skeleton.JOINT_NAMES[j]}" for part, joints in skeleton.PARTS.items() for j in range(joints.start, joints.stop)]
    figure = go.Figure(go.Heatmap(z=z, x=starts, y=labels, colorscale=scale, zmin=-0.5, zmax=most + 0.5,
                                  colorbar=dict(title="views", tickvals=list(range(most + 1)), ticktext=[str(c) for c in range(most + 1)]),
                                  hovertemplate="frame %{x}<br>%{y}: %{z} views<extra></extra>"))  # fmt: skip
    for joints in list(skeleton.PARTS.values())[1:]:  # a line between parts
        figure.add_hline(y=joints.start - 0.5, line=dict(color="#000", width=1.5))
    figure.update_layout(title=f"Views per joint over time (fewest per column of {size} frame(s); 0: missing or gap-filled)",
                         height=120 + 14 * len(labels), margin=dict(l=230, r=20, t=50, b=40),
                         yaxis=dict(autorange="reversed", dtick=1, tickfont=dict(size=9)))  # fmt: skip
    return figure


def bone_length_spread(lengths: np.ndarray) -> dict[str, np.ndarray]:
    """Per bone (column of ``lengths (frames, bones)``, NaN: missing): the 5th, 25th, 50th,
    75th and 95th percentiles (``low``, ``q1``, ``median``, ``q3``, ``high``; NaN for a bone
    never measured). Whiskers at percentiles, not at the extremes: one wrong frame's
    1.8 m forearm would squash every box."""
    values = {name: np.full(lengths.shape[1], np.nan) for name in ("low", "q1", "median", "q3", "high")}
    measured = np.isfinite(lengths).any(axis=0)
    if measured.any():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            quantiles = np.nanpercentile(lengths[:, measured], [5, 25, 50, 75, 95], axis=0)
        for name, row in zip(values, quantiles):
            values[name][measured] = row
    return values


def bones_figure(data: ReportData):
    """Bone lengths, body and hands on their own axes: the triangulated frames' spread
    (before refine: how far the 2D views agree in 3D) and refine's one length per bone
    (after: fixed by construction)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    names = np.array([f"{skeleton.JOINT_NAMES[a]}-{skeleton.JOINT_NAMES[b]}" for a, b in skeleton.BONES])
    spread = {key: value * 1000.0 for key, value in bone_length_spread(data.bone_lengths_before).items()}
    body = np.array([a < skeleton.BODY.stop for a, _ in skeleton.BONES])
    figure = make_subplots(rows=2, cols=1, subplot_titles=("body bones (mm)", "hand bones (mm)"), vertical_spacing=0.22)
    for row, keep in ((1, body), (2, ~body)):
        shown = keep & np.isfinite(spread["median"])
        figure.add_trace(
            go.Box(x=names[shown], q1=spread["q1"][shown], median=spread["median"][shown], q3=spread["q3"][shown], lowerfence=spread["low"][shown],
                   upperfence=spread["high"][shown], marker_color="#1f77b4", name="triangulated frames", showlegend=row == 1), row=row, col=1,
        )  # fmt: skip
        figure.add_trace(
            go.Scatter(x=names[keep], y=data.bone_lengths_after[keep] * 1000.0, mode="markers", name="after refine", showlegend=row == 1,
                       marker=dict(color="#d62728", symbol="diamond", size=7)), row=row, col=1,
        )  # fmt: skip
        figure.update_yaxes(title_text="mm", row=row, col=1)
    figure.update_layout(title="Bone lengths: triangulated frames (boxes: quartiles, whiskers 5th-95th percentile) and refined (diamonds)",
                         height=900, margin=dict(l=60, r=20, t=70, b=160))  # fmt: skip
    return figure


_SLIDER_FRAMES = 150  # the 3D skeleton's slider steps at most (frames sampled evenly)


def _skeleton_lines(points: np.ndarray) -> np.ndarray:
    """``points (59, 3)`` -> the skeleton's edges as one polyline with NaN breaks ``(3 * edges, 3)``."""
    edges = np.asarray(skeleton.DRAW_EDGES)
    lines = np.full((len(edges), 3, 3), np.nan)
    lines[:, 0], lines[:, 1] = points[edges[:, 0]], points[edges[:, 1]]
    return lines.reshape(-1, 3)


def trajectory_figure(data: ReportData):
    """The refined 3D skeleton with a frame slider (red: a flagged part), the paths of a
    few joints and the ego camera (metres); the view is framed on the subject (exo
    cameras farther away are outside it)."""
    import plotly.graph_objects as go

    frames = data.points.shape[0]
    figure = go.Figure()
    step = max(1, frames // 2000)
    for name, path in data.trajectory.items():
        points = path[::step]
        figure.add_trace(go.Scatter3d(x=points[:, 0], y=points[:, 1], z=points[:, 2], mode="lines", name=name, line=dict(width=3), opacity=0.5))
    if data.ego_path is not None and np.isfinite(data.ego_path).any():
        points = data.ego_path[::step]
        figure.add_trace(go.Scatter3d(x=points[:, 0], y=points[:, 1], z=points[:, 2], mode="lines", name="ego camera", line=dict(dash="dot", width=4)))
    centres = np.array(list(data.cameras.values()))
    if len(centres):
        figure.add_trace(go.Scatter3d(x=centres[:, 0], y=centres[:, 1], z=centres[:, 2], mode="markers+text", text=list(data.cameras),
                                      name="exo cameras", marker=dict(size=5, symbol="diamond")))  # fmt: skip
    sampled = np.unique(np.linspace(0, frames - 1, min(frames, _SLIDER_FRAMES)).astype(int)) if frames else np.array([], int)
    flagged = data.flags.any(axis=2)  # (frames, parts)
    part_of = np.zeros(59, int)
    for p, joints in enumerate(skeleton.PARTS.values()):
        part_of[joints] = p

    def traces(frame: int):
        points = data.points[frame]
        lines = _skeleton_lines(points)
        colours = np.where(flagged[frame, part_of], "#d62728", "#2ca02c")
        return [
            go.Scatter3d(x=lines[:, 0], y=lines[:, 1], z=lines[:, 2], mode="lines", line=dict(color="#333", width=4), name="skeleton", connectgaps=False),
            go.Scatter3d(x=points[:, 0], y=points[:, 1], z=points[:, 2], mode="markers", marker=dict(size=3, color=colours), name="joints (red: flagged part)",
                         text=list(skeleton.JOINT_NAMES), hovertemplate="%{text}<extra></extra>"),
        ]  # fmt: skip

    if len(sampled):
        first = len(figure.data)
        figure.add_traces(traces(int(sampled[0])))
        figure.frames = [go.Frame(data=traces(int(frame)), traces=[first, first + 1], name=str(int(frame))) for frame in sampled]
        figure.update_layout(
            sliders=[dict(active=0, currentvalue=dict(prefix="frame "), pad=dict(t=30),
                          steps=[dict(label=str(int(frame)), method="animate", args=[[str(int(frame))], dict(mode="immediate", frame=dict(duration=0, redraw=True), transition=dict(duration=0))])
                                 for frame in sampled])]
        )  # fmt: skip
    body = data.points[:, skeleton.BODY][np.isfinite(data.points[:, skeleton.BODY]).all(axis=-1)]
    scene = dict(aspectmode="data")
    if len(body):
        low, high = body.min(axis=0) - 0.5, body.max(axis=0) + 0.5
        scene = dict(aspectmode="manual", aspectratio=dict(zip("xyz", (high - low) / (high - low).max())),
                     **{f"{axis}axis": dict(range=[float(low[i]), float(high[i])]) for i, axis in enumerate("xyz")})  # fmt: skip
    figure.update_layout(title="3D skeleton (slider: frame; red: a flagged part) and paths (m)", height=700, scene=scene, margin=dict(l=0, r=0, t=50, b=0))
    return figure


def _cell(value, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return html.escape(str(value))


def _plus_minus(value, sigma, digits: int) -> str:
    return _cell(value, digits) + (f" &plusmn; {_cell(sigma, digits)}" if sigma is not None else "")


def rig_check_html(check: dict | None) -> str:
    """The calibration check's table: per camera the estimated correction with its 1-sigma
    uncertainty, the reprojection error before/after, and what was done (stage calibrate_check)."""
    if not check:
        return ""
    rows = "".join(
        f"<tr><th class='left'>{html.escape(name)}</th><td class='left'>{html.escape(camera['status'])}</td>"
        f"<td>{_plus_minus(camera['rotation_deg'], camera['rotation_sigma_deg'], 3)}</td>"
        f"<td>{_plus_minus(camera['translation_mm'], camera['translation_sigma_mm'], 1)}</td>"
        f"<td>{_plus_minus(camera['time_offset_ms'], camera['time_offset_sigma_ms'], 1)}</td>"
        f"<td>{_cell(camera['reprojection_px_before'], 2)} &rarr; {_cell(camera['reprojection_px_after'], 2)}</td>"
        f"<td class='left'>{'APPLIED' if camera['applied'] else 'would apply' if camera['would_apply'] else ''}</td>"
        f"<td class='left'>{html.escape('; '.join(camera['reasons']))}</td></tr>"
        for name, camera in check["cameras"].items()
    )
    reasons = "; ".join(check["reasons"])
    return (
        f"<p>Calibration check ({html.escape(check['mode'])} mode): <b>{html.escape(check['status'])}</b>, "
        f"{check['samples']} joint samples over {check['frames']} frames, trusted cameras: {html.escape(', '.join(check['trusted']) or 'none')}"
        + (f"; {html.escape(reasons)}" if reasons else "")
        + ".</p><table><tr><th class='left'>camera</th><th class='left'>status</th><th>rotation deg</th><th>centre moved mm</th>"
        "<th>time offset ms</th><th>median reprojection px before &rarr; after</th><th class='left'>correction</th><th class='left'>why</th></tr>"
        f"{rows}</table>"
    )


def summary_html(data: ReportData) -> str:
    """The quality summary as tables."""
    metrics = data.metrics
    parts = metrics["parts"]
    rows = "".join(
        f"<tr><th class='left'>{part}</th><td>{_cell(entry['reconstructed'] * 100, 1)} %</td><td>{_cell(entry['observed'] * 100, 1)} %</td>"
        f"<td>{_cell(entry['bone_length_cv_percent']['before'])}</td><td>{_cell(entry['bone_length_cv_percent']['after'])}</td>"
        f"<td>{entry['flagged_frames']}</td><td>{_cell(entry['label_quality_percent'], 1)} %</td></tr>"
        for part, entry in parts.items()
    )
    reasons = "".join(
        f"<tr><th class='left'>{reason}</th>" + "".join(f"<td>{parts[part]['flagged_frames_by_reason'][reason]}</td>" for part in PART_NAMES) + "</tr>"
        for reason in REASONS
    )
    offsets = metrics.get("camera_offset_px", {})
    offset_cameras = metrics.get("cameras_offset", [])
    cameras = "".join(
        f"<tr><th class='left'>{html.escape(name)}</th><td>{_cell(values['mean'])}</td><td>{_cell(values['median'])}</td>"
        + "".join(f"<td>{_cell(offsets.get(name, {}).get(part))}</td>" for part in PART_NAMES)
        + f"<td class='left'>{'OFFSET' if name in offset_cameras else ''}</td></tr>"
        for name, values in metrics["reprojection_error_px"].items()
    )
    offset_html = (
        f"<p><b>Camera(s) offset for the whole take: {html.escape(', '.join(offset_cameras))}</b> (their residuals keep one "
        "shift in every frame: calibration or time sync; every frame they see is flagged camera_offset).</p>"
        if offset_cameras
        else ""
    )
    frames = metrics.get("video_frames") or {}
    frames_html = (
        "<p>Videos whose size is not their calibration's: "
        + "; ".join(f"<b>{html.escape(name)}</b>: {html.escape(entry['assumed'])}" for name, entry in frames.items())
        + ".</p>"
        if frames
        else ""
    )
    fit = metrics.get("body_model")
    fit_html = ""
    if fit and fit.get("mean_error_mm"):
        cells = "".join(f"<td>{_cell(fit['mean_error_mm'].get(part), 1)}</td>" for part in PART_NAMES)
        worst = sorted(((value, name) for name, value in (fit.get("joint_mean_error_mm") or {}).items() if value is not None), reverse=True)[:5]
        fit_html = (
            f"<table><tr><th class='left'>body model ({html.escape(str(fit['model']))}) fitted joints to labels, mean mm</th>"
            + "".join(f"<th>{part}</th>" for part in PART_NAMES)
            + f"</tr><tr><th class='left'>mean</th>{cells}</tr></table>"
            + (f"<p>Worst fitted joints: {html.escape(', '.join(f'{name} {value:.1f} mm' for value, name in worst))}.</p>" if worst else "")
        )
    ego = metrics.get("ego")
    ego_html = ""
    if ego:
        missing = ", ".join(f"{key} {value}" for key, value in ego.get("frames_without_pose", {}).items()) or "none"
        ego_html = (
            f"<p>Ego camera <b>{html.escape(str(ego['camera']))}</b> (poses from {html.escape(str(ego['pose_source']))}): "
            f"{ego['frames_with_pose']} of {metrics['frames']} frames with a pose; without: {html.escape(missing)}. "
            f"Overlay on its video: {html.escape(str(ego.get('video_overlay', '-')))}.</p>"
        )
    return (
        f"<p><span class='score'>{_cell(metrics['quality_score'], 1)} %</span> of frame and part labels without any flag "
        f"({metrics['frames']} frames at {data.fps:g} fps; {metrics['flagged_frames']} frames flagged).</p>"
        f"{ego_html}"
        "<table><tr><th class='left'>part</th><th>reconstructed</th><th>observed (not gap-filled)</th>"
        "<th title='how much the triangulated bone lengths vary over the frames: a sign of how well the 2D views agree in 3D'>bone CV % of the triangulated frames (2D/3D consistency)</th>"
        "<th title='refine fits one length per bone: near zero by construction, not a quality gain'>bone CV % after refine (fixed by construction)</th>"
        f"<th>flagged frames</th><th>labels without flag</th></tr>{rows}</table>"
        "<table><tr><th class='left'>flagged frames by reason</th>" + "".join(f"<th>{part}</th>" for part in PART_NAMES) + f"</tr>{reasons}</table>"
        f"{offset_html}{rig_check_html(metrics.get('calibrate_check'))}{frames_html}<table><tr><th class='left'>camera</th><th>mean inlier error px</th><th>median px</th>"
        + "".join(f"<th>offset over the take, {part} px</th>" for part in PART_NAMES)
        + f"<th class='left'></th></tr>{cameras}</table>"
        f"{fit_html}"
    )


def frame_time(frame: int, start: int, fps: float) -> float:
    """Seconds into an overlay video of frames from ``start`` at the centre of ``frame``
    (a time on a frame's edge shows the frame before, once rounded)."""
    return (frame - start + 0.5) / fps


def _overlay_links(data: ReportData, frame: int) -> str:
    """Links into the overlay videos at ``frame`` (its centre): the shortest set of frames holding it."""
    holding = [(stop - start, start, files) for (start, stop), files in data.overlay_sets if start <= frame < stop]
    if not holding:
        return "-"
    _, start, files = min(holding, key=lambda entry: entry[0])
    seconds = frame_time(frame, start, data.fps)
    return " ".join(f"<a href='{html.escape(file)}#t={seconds:.4f}' target='_blank'>{html.escape(label)}</a>" for label, file in files.items())


def player_html(data: ReportData) -> str:
    """The review player: a paused video per view of the overlay set holding the frame,
    driven by the timeline, the table rows and the arrow keys (one frame a step)."""
    known = {view for _, files in data.overlay_sets for view in files} - {"mosaic"}  # the views (the mosaic: a link per row)
    views = [name for name in data.camera_names if name in known] + sorted(known - set(data.camera_names))
    if not views:
        return (
            "<div id='player'><p id='player-note'>No overlay videos (qa.overlay_videos is false): the rows and the timeline only find the stretch.</p>"
            f"</div>{_legend_html(data)}"
        )
    figures = "".join(
        f"<figure><video class='review' data-view='{html.escape(view)}' muted playsinline preload='auto'></video><figcaption>{html.escape(view)}</figcaption></figure>"
        for view in views
    )
    return (
        "<div id='player'><div class='bar'>frame <b id='player-frame'>-</b> "
        "<button type='button' onclick='stepFrame(-1)' title='previous frame (left arrow)'>&larr;</button> "
        "<button type='button' onclick='stepFrame(1)' title='next frame (right arrow)'>&rarr;</button> "
        "<small>click a stretch or the timeline; left / right arrow keys step one frame</small> <span id='player-note'></span></div>"
        f"<div class='views'>{figures}</div></div>{_legend_html(data)}"
    )


def _legend_html(data: ReportData) -> str:
    """The overlays' legend (the image burnt into the mosaic), as a PNG."""
    import cv2

    from stages.qa.overlay import legend_image

    ok, png = cv2.imencode(".png", cv2.cvtColor(legend_image(420, *data.ramp_px), cv2.COLOR_RGB2BGR))
    return (
        f"<figure><img class='legend' alt='overlay legend' src='data:image/png;base64,{base64.b64encode(png.tobytes()).decode()}'><figcaption>legend</figcaption></figure>"
        if ok
        else ""
    )


def _review_json(data: ReportData) -> str:
    sets = [{"start": int(start), "stop": int(stop), "files": files} for (start, stop), files in data.overlay_sets]
    first = data.stretches[0].start if data.stretches else 0
    return json.dumps({"fps": data.fps, "frames": int(data.flags.shape[0]), "sets": sets, "first": int(first)}).replace("</", "<\\/")


def _evidence_html(stretch: FlagStretch, camera_names: list[str]) -> str:
    """Each reason of the stretch: its frames, and the value against the threshold where it was furthest over."""
    items = []
    for item in stretch.evidence:
        test = REASON_TESTS[item.reason]
        where = f"frame {item.frame}" + (f", {camera_names[item.view]}" if item.view >= 0 else "")
        items.append(
            f"<li data-reason='{item.reason}'><b>{item.reason}</b> ({item.frames} frame(s)): "
            f"<span class='value'>{html.escape(test.describe(item.value, item.threshold))}</span> at {html.escape(where)}"
            f"<br><small>{html.escape(test.measures)}</small></li>"
        )
    return f"<ul class='evidence'>{''.join(items)}</ul>"


def stretches_html(data: ReportData) -> str:
    """The flagged stretches, most severe first: the culprit camera (one rule,
    :func:`fitting.quality.culprit_view`), each reason's value and threshold, a labelled
    thumbnail of that camera at the frame it is furthest over, links to the overlays."""
    if not data.stretches:
        return "<p>No frame is flagged.</p>"
    rows = []
    for index, stretch in enumerate(data.stretches[: data.max_rows]):
        part = PART_NAMES[stretch.part]
        camera = data.camera_names[stretch.view] if 0 <= stretch.view < len(data.camera_names) else "no single camera"
        thumbnail = data.thumbnails.get((stretch.worst_frame, stretch.part, stretch.view))
        image = ""
        if thumbnail:
            jpeg, shown = thumbnail
            label = html.escape(f"{shown} frame {stretch.worst_frame}")
            image = (f"<img class='thumb' alt='{label}' title='{label}' data-camera='{html.escape(shown)}' data-frame='{stretch.worst_frame}' "
                     f"src='data:image/jpeg;base64,{base64.b64encode(jpeg).decode()}'>")  # fmt: skip
        links = _overlay_links(data, stretch.start)
        rows.append(
            f"<tr class='stretch' id='stretch-{index}' data-part='{part}' data-start='{stretch.start}' data-stop='{stretch.stop}' "
            f"data-camera='{html.escape(camera)}' data-frame='{stretch.worst_frame}'>"
            f"<td>{stretch.start}-{stretch.stop - 1}</td><td class='left'>{part}</td><td class='left camera'>{html.escape(camera)}</td>"
            f"<td class='left'>{_evidence_html(stretch, data.camera_names)}</td><td>{image}</td><td class='left'>{links}</td></tr>"
        )
    more = f"<p>{len(data.stretches) - data.max_rows} more stretches not listed.</p>" if len(data.stretches) > data.max_rows else ""
    return (
        "<p>The camera of a stretch is the one that tripped the most (frame, reason) pairs in it (ties: the one furthest over its thresholds); "
        "its thumbnail shows that camera at the frame it is furthest over. A value is the reason's measurement against its threshold.</p>"
        "<table><tr><th>frames</th><th class='left'>part</th><th class='left'>camera</th><th class='left'>reasons: value vs threshold</th>"
        f"<th>camera at the frame shown</th><th class='left'>overlay videos</th></tr>{''.join(rows)}</table>{more}"
    )


def render_report(data: ReportData) -> str:
    """The whole report as one HTML document."""
    from plotly.offline import get_plotlyjs

    sections = [
        ("summary", "Quality summary", summary_html(data)),
        ("timeline", "Flagged data", _figure_html(timeline_figure(data), "plot-timeline")),
        ("flagged", f"Flagged stretches ({len(data.stretches)})", player_html(data) + stretches_html(data)),
        ("reprojection", "Reprojection error", _figure_html(reprojection_figure(data), "plot-reprojection")),
        ("views", "Views per joint", _figure_html(views_figure(data), "plot-views")),
        ("bones", "Bone lengths", _figure_html(bones_figure(data), "plot-bones")),
        ("trajectory", "3D skeleton", _figure_html(trajectory_figure(data), "plot-trajectory")),
    ]
    navigation = " | ".join(f"<a href='#{key}'>{title}</a>" for key, title, _ in sections)
    body = "".join(f"<h2 id='{key}'>{title}</h2><div class='section'>{content}</div>" for key, title, content in sections)
    title = f"QA report: {html.escape(data.take_name)}"
    metrics_json = json.dumps(data.metrics).replace("</", "<\\/")  # safe inside <script>
    return (
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{title}</title><style>{_STYLE}</style>"
        f"<script>{get_plotlyjs()}</script></head><body><h1>{title}</h1><p>{navigation}</p>{body}"
        f"<script type='application/json' id='review-data'>{_review_json(data)}</script>"
        f"<script>{_SCRIPT}</script><script type='application/json' id='metrics'>{metrics_json}</script>"
        "</body></html>\n"
    )
