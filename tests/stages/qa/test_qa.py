"""QA: flags that find injected faults, overlays on the figure, a report that opens in a
real browser, a 3D recording, the report command and the batch report."""

from __future__ import annotations

import contextlib
import html
import json
import re
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from fitting import skeleton
from fitting.quality import PART_NAMES, REASON_TESTS, REASONS
from pipeline.atomic import load_npz
from pipeline.config import load_config
from pipeline.formats.openpose import write_openpose_folder
from pipeline.formats.video import iter_frames, video_info
from workflow import runner
from workflow.synth.observations import DetectorConfig
from workflow.synth.render import PART, figure_labels
from workflow.synth.take_writer import SynthConfig, synthesize_take

pytestmark = pytest.mark.integration  # runs stages or the pipeline on take folders, videos or the real capture

PRECOMPUTED = ["detect.backend=precomputed"]
# A detector without random gross errors, so that what the flags find elsewhere than the
# injected faults is real (occlusion noise, gaps), not other faults.
CLEAN_DETECTOR = DetectorConfig(
    body_outlier_probability=0.0,
    hand_outlier_probability=0.0,
    body_swap_start_probability=0.0,
    limb_swap_start_probability=0.0,
    hand_miss_start_probability=0.0,
)
# Injected faults: name, frames, parts (indices into PART_NAMES), the reason expected.
# The swap also swaps cam01's hands, but detect's hand quality check drops hands that
# disagree with the other views before triangulation (the hand labels stay right), so
# the body is where the swap shows.
FAULTS = (
    ("camera cam02 offset by 10 px", range(40, 60), (0, 1, 2), "part_shift"),
    ("left/right swap in cam01", range(100, 108), (0,), "outlier_view"),
    ("left hand lost for a second", range(150, 180), (1,), "missing"),
)
# The camera the report must name for each fault's stretches (None: no single camera).
FAULT_CAMERAS = {"part_shift": "cam02", "outlier_view": "cam01", "missing": None}
# The faulty take's exo videos: one flat grey per camera (a thumbnail's background tells its camera).
GREYS = {"cam01": 50, "cam02": 100, "cam03": 150, "cam04": 200}


def _grey_videos(take_dir, take) -> None:
    from pipeline.formats.video import VideoWriter

    for camera in take.exo_cameras:
        width, height = camera.image_size
        image = np.full((height, width, 3), GREYS[camera.name], np.uint8)
        with VideoWriter(take_dir / "frame_aligned_videos" / f"{camera.name}.mp4", take.config.fps, preset="ultrafast", crf=23) as writer:
            for _ in range(take.config.num_frames):
                writer.write(image)


@pytest.fixture(scope="module")
def faulty(tmp_path_factory):
    """A 240-frame take whose 2D detections carry the three faults, run through qa."""
    root = tmp_path_factory.mktemp("qa_faults")
    take_dir = root / "take"
    take = synthesize_take(take_dir, SynthConfig(seed=4, num_frames=240, detector=CLEAN_DETECTOR), render=False)
    keypoints = take.observations.keypoints.copy()
    keypoints[1, 40:60, :, 0] += 10.0
    keypoints[0, 100:108] = keypoints[0, 100:108][:, skeleton.left_right_swap_index()]
    keypoints[:, 150:180, skeleton.LEFT_HAND] = np.nan
    for view, camera in enumerate(take.exo_cameras):
        write_openpose_folder(take_dir / "keypoints2d" / "openpose" / camera.name, keypoints[view], camera.name)
    _grey_videos(take_dir, take)
    report = runner.run_take(take_dir, root / "out", load_config(overrides=PRECOMPUTED + ["qa.overlay_videos=false", "qa.recording=false"]))
    dropped = report.summaries["detect"]["hand_quality"]
    assert sum(dropped[hand]["dropped_disagreeing"] for hand in ("left_hand", "right_hand")) >= 8  # the swapped hands
    return report, load_npz(root / "out" / report.take / "qa" / "flags.npz")


def test_flags_find_each_injected_fault_in_the_right_frames_and_part(faulty):
    report, stored = faulty
    flags = stored["flags"]
    assert list(stored["reasons"]) == list(REASONS) and list(stored["parts"]) == list(PART_NAMES)
    window = np.zeros(flags.shape[:2], dtype=bool)
    lines = []
    for name, frames, parts, reason in FAULTS:
        found = flags[np.ix_(list(frames), list(parts), [REASONS.index(reason)])].mean()
        lines.append(f"{name}: recall {found:.2f} ({reason})")
        assert found >= 0.9, lines[-1]
        window[np.ix_(list(frames), list(parts))] = True
    flagged = flags.any(axis=2)
    precision = (flagged & window).sum() / flagged.sum()
    elsewhere = (flagged & ~window).sum() / (~window).sum()
    print("\n" + "\n".join(lines) + f"\nprecision {precision:.2f}; labels flagged outside the faults {100 * elsewhere:.1f} %")
    assert precision > 0.6 and elsewhere < 0.1
    assert report.summaries["qa"]["flagged_frames"] == int(flagged.any(axis=1).sum())


def _stretch_rows(page: str) -> list[dict]:
    """The report's flagged-stretch rows: their attributes, evidence items and thumbnail."""
    rows = []
    for match in re.finditer(r"<tr class='stretch'([^>]*)>(.*?)</tr>", page, re.DOTALL):
        attributes = dict(re.findall(r"data-(\w+)='([^']*)'", match.group(1)))
        image = re.search(r"<img class='thumb'([^>]*)>", match.group(2))
        rows.append({
            **attributes,
            "start": int(attributes["start"]), "stop": int(attributes["stop"]), "frame": int(attributes["frame"]),
            "evidence": {reason: html.unescape(text) for reason, text in re.findall(r"<li data-reason='(\w+)'>.*?<span class='value'>([^<]*)</span>", match.group(2))},
            "image": None if image is None else dict(re.findall(r"([\w-]+)='([^']*)'", image.group(1))),
        })  # fmt: skip
    return rows


def test_report_rows_name_the_injected_camera_with_value_threshold_and_a_labelled_thumbnail(faulty):
    """Per injected fault: the stretch's row names the injected camera (none for a hand
    lost in every view), shows the reason's value against its threshold, and its
    thumbnail is that camera (its video's grey) at a flagged frame of the stretch."""
    import base64

    report, stored = faulty
    qa = Path(report.output) / "qa"
    page = (qa / "report.html").read_text()
    metrics = json.loads((qa / "metrics.json").read_text())
    rows = _stretch_rows(page)
    names = list(stored["camera_names"])
    for _, frames, parts, reason in FAULTS:
        for p in parts:
            part = PART_NAMES[p]
            covering = [row for row in rows if row["part"] == part and row["start"] < frames.stop and row["stop"] > frames.start]
            row = max(covering, key=lambda row: min(row["stop"], frames.stop) - max(row["start"], frames.start))
            expected = FAULT_CAMERAS[reason]
            assert row["camera"] == (expected or "no single camera"), (reason, part, row)
            assert reason in row["evidence"], (reason, part, row["evidence"])
            value_text = row["evidence"][reason]
            assert re.fullmatch(r"[-\d.]+( \w+)? (>|>=|<) [-\d.]+", value_text), value_text
            flagged = np.flatnonzero(stored["flags"][row["start"] : row["stop"], p].any(axis=1)) + row["start"]
            assert row["frame"] in flagged
            image = row["image"]
            assert image is not None and int(image["data-frame"]) == row["frame"] and image["title"] == f"{image['data-camera']} frame {row['frame']}"
            jpeg = base64.b64decode(image["src"].split(",", 1)[1])
            thumbnail = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_GRAYSCALE)
            shown = min(GREYS, key=lambda name: abs(GREYS[name] - float(np.median(thumbnail))))
            assert shown == image["data-camera"], (shown, image["data-camera"])
            label = thumbnail[-18:-3, 4:60]  # the burnt-in "camera  frame N": bright text on a dark box
            grey = GREYS[shown]
            assert (label < 0.5 * grey).mean() > 0.5 and (label > 220).any(), (shown, np.percentile(label, [10, 50, 90]))
            if expected is not None:
                assert image["data-camera"] == expected
            # metrics.json holds the same stretch with the same evidence
            (entry,) = [item for item in metrics["stretches"] if item["part"] == part and item["first"] == row["start"]]
            assert entry["camera"] == expected and entry["shown_frame"] == row["frame"]
            evidence = next(item for item in entry["reasons"] if item["reason"] == reason)
            assert value_text == REASON_TESTS[reason].describe(evidence["value"], evidence["threshold"])
    assert names == ["cam01", "cam02", "cam03", "cam04"]


def test_metrics_list_exactly_the_flagged_frames_per_part_and_reason(faulty):
    report, stored = faulty
    metrics = json.loads((Path(report.output) / "qa" / "metrics.json").read_text())
    listed = metrics["flagged"]
    for p, part in enumerate(PART_NAMES):
        for r, reason in enumerate(REASONS):
            frames = np.flatnonzero(stored["flags"][:, p, r]).tolist()
            entry = listed.get(part, {}).get(reason)
            assert (entry["frames"] if entry else []) == frames, (part, reason)
            if entry:
                assert np.allclose(entry["value"], stored["value"][frames, p, r], atol=1e-3, equal_nan=True)
                cameras = [None if c < 0 else str(stored["camera_names"][c]) for c in stored["camera"][frames, p, r]]
                assert entry["camera"] == cameras
    for _, frames, parts, reason in FAULTS:  # the injected frames are listed, with the injected camera
        for p in parts:  # (a frame's camera is the one furthest over: another view may trip more in a frame)
            entry = listed[PART_NAMES[p]][reason]
            inside = [i for i, frame in enumerate(entry["frames"]) if frame in frames]
            assert len(inside) >= 0.9 * len(frames)
            named = [entry["camera"][i] for i in inside]
            assert (named.count(FAULT_CAMERAS[reason]) >= 0.9 * len(inside)) if FAULT_CAMERAS[reason] else set(named) == {None}


def test_report_without_overlay_videos_finds_stretches_without_errors(faulty):
    """qa.overlay_videos=false: no player videos; a row click still highlights it, the
    arrow keys do nothing harmful, no console error."""
    report, _ = faulty
    errors = []
    with _report_page(Path(report.output) / "qa" / "report.html", {"width": 1400, "height": 1000}, errors) as page:
        assert page.locator("video.review").count() == 0 and page.locator("img.legend").count() == 1
        row = page.locator("tr.stretch").nth(1)
        row.locator("td").first.click()
        page.keyboard.press("ArrowRight")
        highlighted = "highlight" in (row.get_attribute("class") or "")
    assert highlighted and errors == []


def test_the_offset_camera_is_named(faulty):
    _, stored = faulty
    view_flagged = stored["view_flagged"][:, 40:60, 0]
    assert list(stored["camera_names"])[int(np.argmax(view_flagged.sum(axis=1)))] == "cam02"


def _take_with_shifted_camera(root, shift_px: float):
    """The faulty fixture's take without faults, cam02's detections shifted by ``shift_px``
    in x in every frame, through the pipeline: (metrics.json, flags.npz)."""
    take_dir = root / "take"
    take = synthesize_take(take_dir, SynthConfig(seed=4, num_frames=240, detector=CLEAN_DETECTOR), render=False)
    keypoints = take.observations.keypoints.copy()
    keypoints[1, :, :, 0] += shift_px
    for view, camera in enumerate(take.exo_cameras):
        write_openpose_folder(take_dir / "keypoints2d" / "openpose" / camera.name, keypoints[view], camera.name)
    config = load_config(overrides=PRECOMPUTED + ["qa.overlay_videos=false", "qa.report=false", "qa.recording=false"])
    report = runner.run_take(take_dir, root / "out", config)
    qa = root / "out" / report.take / "qa"
    return json.loads((qa / "metrics.json").read_text()), load_npz(qa / "flags.npz")


def test_a_camera_offset_for_the_whole_take_is_flagged_and_lowers_the_score(tmp_path):
    """A camera wrong in every frame (a bad calibration) has no 'usual' to stand out from:
    the take-level check compares its mean residual vector over the take with a limit."""
    clean, _ = _take_with_shifted_camera(tmp_path / "clean", 0.0)
    shifted, stored = _take_with_shifted_camera(tmp_path / "shifted", 10.0)
    offsets = {name: max(value for value in parts.values() if value is not None) for name, parts in shifted["camera_offset_px"].items()}
    body_frames = stored["flags"][:, 0, REASONS.index("camera_offset")].mean()
    print(
        f"\nclean take: score {clean['quality_score']:.1f}, offsets {clean['camera_offset_px']}"
        f"\ncam02 shifted 10 px: score {shifted['quality_score']:.1f}, offsets (largest part) {offsets}, "
        f"body frames flagged camera_offset {100 * body_frames:.0f} %"
    )
    assert clean["cameras_offset"] == [] and shifted["cameras_offset"] == ["cam02"]
    assert offsets["cam02"] > 5.0 and max(value for name, value in offsets.items() if name != "cam02") < offsets["cam02"] / 2
    assert body_frames > 0.9
    assert shifted["quality_score"] < clean["quality_score"] - 20.0
    views_flagged = stored["view_flagged"][:, :, 0].sum(axis=1)
    assert list(stored["camera_names"])[int(np.argmax(views_flagged))] == "cam02"


# --------------------------------------------------------------------------------------
# A rendered take through qa: overlays, report, recording
# --------------------------------------------------------------------------------------

FRAMES = 24


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    root = tmp_path_factory.mktemp("qa_rendered")
    take_dir = root / "take"
    take = synthesize_take(take_dir, SynthConfig(seed=9, num_frames=FRAMES), render=True)
    report = runner.run_take(take_dir, root / "out", load_config(overrides=PRECOMPUTED))
    return take, report, root / "out" / report.take / "qa"


def test_qa_writes_every_output(rendered):
    take, report, qa = rendered
    names = {path.name for path in qa.iterdir()}
    cameras = [camera.name for camera in take.exo_cameras] + [take.ego.name]
    assert {f"overlay_{name}.mp4" for name in cameras} | {"overlay_mosaic.mp4", "report.html", "metrics.json", "flags.npz"} <= names
    assert all(video_info(qa / f"overlay_{name}.mp4").num_frames == FRAMES for name in cameras)
    from stages.qa.overlay import read_frame_code

    for name in (cameras[0], cameras[-1], "mosaic"):  # every decoded frame carries its own number
        assert [read_frame_code(image) for _, image in iter_frames(qa / f"overlay_{name}.mp4", 0, FRAMES)] == list(range(FRAMES))
    metrics = json.loads((qa / "metrics.json").read_text())
    assert set(metrics["parts"]) == set(PART_NAMES) and 0 <= metrics["quality_score"] <= 100
    assert set(metrics["reprojection_error_px"]) == {camera.name for camera in take.exo_cameras}
    assert metrics["ego"]["frames_with_pose"] == FRAMES


def test_every_video_carries_the_legend_and_the_mosaic_spare_cell_shows_it(rendered):
    take, _, qa = rendered
    from stages.qa.overlay import _GOOD

    for name in [take.exo_cameras[0].name, take.ego.name]:
        _, image = next(iter_frames(qa / f"overlay_{name}.mp4", 3, 4))
        legend_height = 26 + 17 * 2
        bar = image[image.shape[0] - legend_height + 8, 12:300].astype(int)  # the ramp's row, blended
        assert bar[0, 1] > bar[0, 0] + 60 and bar[-1, 0] > bar[-1, 1] + 60, name  # green at the left, red at the right
    _, mosaic = next(iter_frames(qa / "overlay_mosaic.mp4", 3, 4))
    spare = mosaic[: mosaic.shape[0] // 2, 2 * mosaic.shape[1] // 3 :]  # 5 views in 3 columns: the top right cell is a view,
    lower = mosaic[mosaic.shape[0] // 2 : -80, 2 * mosaic.shape[1] // 3 :]  # the bottom right one the legend
    green = (np.abs(lower.astype(int) - np.array(_GOOD)).max(axis=2) < 60).sum()
    assert green > 200 and (lower.max(axis=2) > 200).sum() > 500 and spare.std() > 10
    page = (qa / "report.html").read_text()
    assert "<img class='legend'" in page


def _drawn_pixels(overlay: np.ndarray, source: np.ndarray) -> np.ndarray:
    """Pixels the overlay changed strongly (the drawing), without the label, the frame code and the legend in the corners."""
    from stages.qa.overlay import FRAME_CODE_BITS, FRAME_CODE_BLOCK, legend_image

    changed = np.abs(overlay.astype(int) - source.astype(int)).max(axis=2) > 80
    changed[:26, :160] = False
    legend = legend_image(330, 5.0, 15.0, full=False).shape
    changed[-legend[0] - 1 :, : legend[1] + 1] = False
    changed[: FRAME_CODE_BLOCK + 2, -FRAME_CODE_BITS * FRAME_CODE_BLOCK - 2 :] = False
    return changed


def _on(mask: np.ndarray, drawn: np.ndarray, radius: int) -> float:
    near = cv2.dilate(mask.astype(np.uint8), np.ones((2 * radius + 1, 2 * radius + 1), np.uint8)) > 0
    return float(near[drawn].mean())


def test_overlay_joints_lie_on_the_rendered_figure(rendered):
    take, _, qa = rendered
    take_dir = qa.parent.parent.parent / "take"
    joints = take.motion.joints
    results = []
    for frame in (3, 12, 21):
        labels = figure_labels(joints, take.exo_cameras, take.ego, take.config.seed, frame)
        for v, camera in enumerate(take.exo_cameras):
            source = next(iter_frames(take_dir / "frame_aligned_videos" / f"{camera.name}.mp4", frame, frame + 1))[1]
            overlay = next(iter_frames(qa / f"overlay_{camera.name}.mp4", frame, frame + 1))[1]
            drawn = _drawn_pixels(overlay, source)
            figure = labels[v] >= 0
            assert drawn.sum() > 50
            on = _on(figure, drawn, 6)
            shifted = _on(np.roll(figure, 80, axis=1), drawn, 6)  # the same drawing against a misplaced figure
            results.append((on, shifted))
    on, shifted = np.array(results).T
    print(f"\nexo overlays: {100 * on.mean():.1f} % of drawn pixels on the figure (misplaced figure: {100 * shifted.mean():.1f} %)")
    assert on.min() > 0.9 and shifted.max() < 0.6


def test_ego_overlay_hands_lie_on_the_rendered_hands(rendered):
    take, _, qa = rendered
    take_dir = qa.parent.parent.parent / "take"
    ego_index = len(take.exo_cameras)
    hand_parts = [PART["left_hand"], PART["right_hand"], PART["left_forearm"], PART["right_forearm"]]
    checked = []
    for frame in range(0, FRAMES, 4):
        if not take.ego_in_image[frame, skeleton.LEFT_HAND.start :].any():
            continue
        labels = figure_labels(take.motion.joints, take.exo_cameras, take.ego, take.config.seed, frame)[ego_index]
        source = next(iter_frames(take_dir / "frame_aligned_videos" / f"{take.ego.name}.mp4", frame, frame + 1))[1]
        overlay = next(iter_frames(qa / f"overlay_{take.ego.name}.mp4", frame, frame + 1))[1]
        hands = np.isin(labels, hand_parts)
        # Hand marks: magenta / orange lines and the yellow joints drawn where the hands project.
        drawn = _drawn_pixels(overlay, source) & (overlay[..., 0] > 200) & (overlay[..., 2] < 120)
        drawn &= cv2.dilate(hands.astype(np.uint8), np.ones((61, 61), np.uint8)) > 0  # near the hands, not the body's marks
        if drawn.sum() > 20:
            checked.append(_on(hands, drawn, 5))
    print(f"\nego overlay: {len(checked)} frames, {100 * np.mean(checked):.1f} % of hand marks on the rendered hands and forearms")
    assert len(checked) >= 2 and min(checked) > 0.85


def test_report_opens_in_a_real_browser_with_every_plot_drawn(rendered):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("Debian's chromium is not installed (make test installs it where apt-get is available)")
    sync_playwright = pytest.importorskip("playwright.sync_api", reason="playwright (test extra) drives the browser").sync_playwright
    _, _, qa = rendered
    page_file = qa / "report.html"
    # The markup (outside the embedded scripts, whose library code holds URLs of map
    # tiles it never loads here) refers to nothing on the network; at run time the page
    # requests nothing but itself (checked below).
    text = re.sub(r"<script[^>]*>.*?</script>", "", page_file.read_text(), flags=re.DOTALL)
    assert "<script src" not in page_file.read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", text, re.IGNORECASE)  # nothing fetched from the network
    assert not re.search(r"url\(\s*['\"]?(https?:)?//", text) and "@import" not in text
    errors, requests = [], []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"],
        )
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.on("request", lambda request: requests.append(request.url))
            page.goto(page_file.as_uri())
            page.wait_for_function("document.querySelectorAll('.plot-container').length >= 5", timeout=30000)
            drawn = {plot: _plot_area_drawn(page, plot) for plot in _PLOTS}
            thumbnails = page.locator("img.thumb").count()
            # A timeline column of 3 frames starting before a stretch's first frame finds it.
            stretch = page.locator("tr.stretch").first
            start, part = int(stretch.get_attribute("data-start")), stretch.get_attribute("data-part")
            found = page.evaluate(f"showStretch({start - 2}, {start + 1}, '{part}') !== null")
            highlighted = "highlight" in (stretch.get_attribute("class") or "")
            missed = page.evaluate(f"showStretch({start - 3}, {start}, '{part}') === null")  # a column just before it does not
            plotted = page.evaluate(
                """(() => { const t = document.getElementById('plot-timeline').data[0], v = document.getElementById('plot-views');
                           const b = document.getElementById('plot-bones'), s = document.getElementById('plot-trajectory');
                           return {timeline: t.y, views: v.data[0].y, ticks: v.layout.yaxis.dtick, scale: v.data[0].colorscale,
                                   bones: b.data.map(trace => [trace.type, trace.yaxis || 'y', trace.x.length]),
                                   slider: (s.layout.sliders || [{steps: []}])[0].steps.length, frames: (s._transitionData || {})._frames ? s._transitionData._frames.length : null}; })()"""
            )
            # The check sees an emptied plot as blank (it looks at the plotting area, not the titles).
            page.evaluate("Plotly.restyle('plot-views', {z: [[[]]]})")
            emptied = _plot_area_drawn(page, "plot-views")
        finally:
            browser.close()
    print(f"\nreport: share of coloured pixels in each plotting area {drawn} (emptied views plot: {emptied}); {thumbnails} thumbnails")
    assert errors == []
    assert [url for url in requests if not url.startswith(("file:", "data:", "blob:"))] == []
    assert all(share > 0.0005 for share in drawn.values()) and emptied == 0.0  # every plot drew something
    assert thumbnails > 0 and found and highlighted and missed
    # The timeline: a row per part and reason that occurs, per camera for a reason one view trips.
    stored = load_npz(qa / "flags.npz")
    names, view_reasons = list(stored["camera_names"]), list(stored["view_reasons"])
    expected = []
    for p, part in enumerate(PART_NAMES):
        for r, reason in enumerate(REASONS):
            if stored["flags"][:, p, r].any():
                if reason in view_reasons:
                    tripped = stored["view_tripped"][:, :, p, view_reasons.index(reason)].any(axis=1)
                    expected += [f"{part}: {reason} · {names[v]}" for v in np.flatnonzero(tripped)]
                else:
                    expected.append(f"{part}: {reason}")
    assert plotted["timeline"] == expected and len(expected) < len(PART_NAMES) * len(REASONS)
    # Views per joint: every joint labelled by part, a discrete colour per view count (flat bands).
    assert plotted["views"] == [f"{part} · {skeleton.JOINT_NAMES[j]}" for part, joints in skeleton.PARTS.items() for j in range(joints.start, joints.stop)]
    assert plotted["ticks"] == 1 and all(a[1] == b[1] for a, b in zip(plotted["scale"][0::2], plotted["scale"][1::2]))
    # Body and hand bones on their own axes; the 3D skeleton has a frame slider.
    body_bones = sum(a < skeleton.BODY.stop for a, _ in skeleton.BONES)
    assert [(kind, axis) for kind, axis, _ in plotted["bones"]] == [("box", "y"), ("scatter", "y"), ("box", "y2"), ("scatter", "y2")]
    assert plotted["bones"][1][2] == body_bones and plotted["bones"][3][2] == len(skeleton.BONES) - body_bones
    assert plotted["slider"] == FRAMES


@contextlib.contextmanager
def _report_page(page_file, viewport: dict, errors: list, requests: list | None = None):
    """The report open in headless Chromium, its plots drawn; console errors and page errors
    go to ``errors``, requested URLs to ``requests`` (skipped without chromium or playwright)."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("Debian's chromium is not installed (make test installs it where apt-get is available)")
    sync_playwright = pytest.importorskip("playwright.sync_api", reason="playwright (test extra) drives the browser").sync_playwright
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"],
        )
        try:
            page = browser.new_page(viewport=viewport)
            page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
            page.on("pageerror", lambda error: errors.append(str(error)))
            if requests is not None:
                page.on("request", lambda request: requests.append(request.url))
            page.goto(Path(page_file).as_uri())
            page.wait_for_function("document.querySelectorAll('.plot-container').length >= 5", timeout=30000)
            yield page
        finally:
            browser.close()


def _shown_frames(page) -> dict[str, int]:
    """The frame each visible review video shows, read from the frame code burnt into its
    top right corner (videos laid out at their own size, so that one video pixel is one
    screen pixel)."""
    from stages.qa.overlay import FRAME_CODE_BITS, FRAME_CODE_BLOCK, read_frame_code

    page.wait_for_function(
        "Array.from(document.querySelectorAll('video.review')).filter(v => v.offsetParent !== null).every(v => v.readyState >= 2 && !v.seeking && v.paused)",
        timeout=20000,
    )
    boxes = page.evaluate(
        """Array.from(document.querySelectorAll('video.review')).filter(v => v.offsetParent !== null).map(v => {
             const r = v.getBoundingClientRect();
             return {view: v.dataset.view, x: r.right + window.scrollX, y: r.top + window.scrollY, width: v.videoWidth, shown: r.width}; })"""
    )
    width = FRAME_CODE_BITS * FRAME_CODE_BLOCK

    def read() -> dict[str, int]:
        shown = {}
        for box in boxes:
            assert abs(box["shown"] - box["width"]) < 1, box  # one video pixel per screen pixel
            clip = {"x": box["x"] - width, "y": box["y"], "width": width, "height": FRAME_CODE_BLOCK}
            image = cv2.imdecode(np.frombuffer(page.screenshot(full_page=True, clip=clip), np.uint8), cv2.IMREAD_COLOR)
            shown[box["view"]] = read_frame_code(image)
        return shown

    last = None
    for _ in range(30):  # until two reads 100 ms apart agree (the seeked frames painted)
        page.wait_for_timeout(100)
        now = read()
        if now == last:
            return now
        last = now
    return last


def test_review_player_lands_on_the_stretch_first_frame_and_steps_frame_by_frame(rendered):
    """Clicking a stretch's row (or its timeline cell) shows the stretch's first frame in
    every view, paused (the frame code drawn in each overlay equals the stretch's start);
    the arrow keys step one frame; nothing autoplays, nothing is fetched, no console error."""
    take, _, qa = rendered
    errors, requests = [], []
    with _report_page(qa / "report.html", {"width": 2100, "height": 1200}, errors, requests) as page:
        page.add_style_tag(content="#player { position: static; } #player video { width: auto; height: auto; max-width: none; }")
        views = page.evaluate("Array.from(document.querySelectorAll('video.review')).map(v => v.dataset.view)")
        rows = page.locator("tr.stretch")
        results = []
        for index in range(min(rows.count(), 3)):
            row = rows.nth(index)
            start = int(row.get_attribute("data-start"))
            row.locator("td").first.click()
            landed = _shown_frames(page)
            page.keyboard.press("ArrowRight")
            forward = _shown_frames(page)
            page.keyboard.press("ArrowLeft")
            page.keyboard.press("ArrowLeft")
            back = _shown_frames(page)
            results.append((start, landed, forward, back))
        first = rows.first
        clicked, part = int(first.get_attribute("data-start")), first.get_attribute("data-part")
        page.evaluate("seekFrame(0)")
        _shown_frames(page)
        # A click on the timeline cell of the stretch's first frame, as plotly reports it.
        page.evaluate(f"document.getElementById('plot-timeline').emit('plotly_click', {{points: [{{x: {clicked}, y: '{part}: x', data: {{x: [0, 1, 2]}}}}]}})")
        from_timeline = _shown_frames(page)
        paused = page.evaluate("Array.from(document.querySelectorAll('video.review')).every(v => v.paused && !v.autoplay)")
        page.wait_for_timeout(500)
        still = _shown_frames(page)  # half a second later: still there (no playing on)
    print(f"\nreview player: views {views}; (start, landed, +1, -1): {results}; timeline -> {from_timeline}")
    assert views == [camera.name for camera in take.exo_cameras] + [take.ego.name]
    assert results
    for start, landed, forward, back in results:
        assert set(landed.values()) == {start} and set(forward.values()) == {start + 1} and set(back.values()) == {max(start - 1, 0)}
    assert set(from_timeline.values()) == {clicked} and still == from_timeline and paused
    assert errors == []
    assert [url for url in requests if not url.startswith(("file:", "data:", "blob:"))] == []


_PLOTS = ("plot-timeline", "plot-reprojection", "plot-views", "plot-bones", "plot-trajectory")


def _plot_area_drawn(page, plot: str) -> float:
    """The share of coloured pixels (channels differing by > 60: plotly's grey and blue-grey
    background, white grid lines and black text are not) in a plot's plotting area only
    (the 2D drag rectangle or the 3D scene), without its title, axes or colour bar."""
    box = page.evaluate(
        f"""(() => {{ const area = document.querySelector('#{plot} .nsewdrag') || document.querySelector('#{plot} .gl-container [id^=scene]');
                   const r = area.getBoundingClientRect();
                   return {{x: r.x + window.scrollX, y: r.y + window.scrollY, width: r.width, height: r.height}}; }})()"""
    )
    image = cv2.imdecode(np.frombuffer(page.screenshot(full_page=True, clip=box), np.uint8), cv2.IMREAD_COLOR).astype(int)
    coloured = image.max(axis=2) - image.min(axis=2) > 60
    return round(float(coloured.mean()), 4)


def test_recording_loads_back(rendered):
    pytest.importorskip("rerun", reason="rerun-sdk (extra qa3d) writes the recording")
    from rerun.chunk import RrdReader

    take, _, qa = rendered
    reader = RrdReader(qa / "recording.rrd")
    (entry,) = reader.recordings()
    store = reader.store(store=entry)
    paths = {str(path) for path in store.schema().entity_paths()}
    assert {"/world/skeleton", "/world/ego", "/world/ego_path"} | {f"/world/exo/{c.name}" for c in take.exo_cameras} <= paths
    rows = {line.split()[0]: int(line.split()[1].split("=")[1]) for line in store.summary().splitlines() if "timelines=['frame']" in line}
    assert rows["/world/skeleton"] == FRAMES and rows["/world/ego"] == FRAMES  # one per frame, every frame has a pose
    stretches = json.loads((qa / "metrics.json").read_text())["stretches"]
    assert stretches and rows["/flag_log"] == len(stretches)  # one text entry per flagged stretch
    summary = store.summary()
    stills = load_config().qa.recording_images
    for camera in take.exo_cameras:  # stills, 2D detections and error series per view
        assert rows[f"/views/{camera.name}/image"] == min(stills, FRAMES) and rows[f"/views/{camera.name}/detections"] == min(stills, FRAMES)
        assert all(f"/errors/{camera.name}/{part}" in rows for part in PART_NAMES)
    assert all(rows[f"/flags/{part}"] == FRAMES for part in PART_NAMES)
    assert rows[f"/views/{take.ego.name}/image"] == min(stills, FRAMES)
    lines = {line.split()[0]: line for line in summary.splitlines() if "timelines=['frame']" in line}
    assert "EncodedImage" in lines[f"/views/{take.exo_cameras[0].name}/image"] and "Points2D" in lines[f"/views/{take.exo_cameras[0].name}/detections"]
    assert "Scalars" in lines[f"/flags/{PART_NAMES[0]}"]
    (blueprint,) = reader.blueprints()  # the layout the viewer opens with
    assert blueprint.application_id == entry.application_id


def test_report_command_rebuilds_qa_alone_for_a_frame_range(rendered):
    """``report --frames`` draws that range under its own names; the whole take's overlays
    stay, and the report keeps every thumbnail and links each stretch to overlays holding it."""
    from workflow.cli import main

    take, _, qa = rendered
    out = qa.parent
    before = {stage: (out / stage / "manifest.json").stat().st_mtime_ns for stage in ("detect", "refine", "project_ego", "export")}
    flagged = np.flatnonzero(load_npz(qa / "flags.npz")["flags"].any(axis=(1, 2)))
    assert len(flagged) and flagged.max() < 12  # the range below holds no flagged frame
    thumbnails = (qa / "report.html").read_text().count("<img class='thumb'")
    assert main(["report", str(out), "--frames", "12:20"]) == 0
    assert {stage: (out / stage / "manifest.json").stat().st_mtime_ns for stage in before} == before
    assert video_info(qa / "overlay_mosaic_frames12-20.mp4").num_frames == 8
    assert video_info(qa / "overlay_mosaic.mp4").num_frames == FRAMES  # kept from the full run
    page = (qa / "report.html").read_text()
    assert page.count("<img class='thumb'") == thumbnails > 0
    assert "href='overlay_mosaic.mp4#t=" in page and "href='overlay_mosaic_frames12-20.mp4" not in page  # (the player knows every set)
    assert main(["report", str(out), "--frames", f"{flagged.min()}:{flagged.min() + 4}"]) == 0
    page = (qa / "report.html").read_text()
    assert f"href='overlay_mosaic_frames{flagged.min()}-{flagged.min() + 4}.mp4#t={0.5 / take.config.fps:.4f}'" in page  # the first frame's centre
    names = {path.name for path in qa.iterdir()}
    assert {"overlay_mosaic.mp4", "overlay_mosaic_frames12-20.mp4", f"overlay_cam01_frames{flagged.min()}-{flagged.min() + 4}.mp4"} <= names
    manifest = json.loads((qa / "manifest.json").read_text())
    assert sorted(tuple(entry["frames"]) for entry in manifest["summary"]["overlay_sets"]) == sorted(
        [(0, FRAMES), (12, 20), (int(flagged.min()), int(flagged.min()) + 4)]
    )


def test_batch_report_ranks_the_takes(rendered, tmp_path):
    take, report, qa = rendered
    take_dir = qa.parent.parent.parent / "take"
    broken = tmp_path / "broken"
    broken.mkdir()
    reports = runner.run_batch([broken, take_dir], qa.parent.parent, load_config(overrides=PRECOMPUTED + ["qa.overlay_videos=false"]))
    summary = json.loads((qa.parent.parent / "batch_summary.json").read_text())
    ranking = summary["ranking"]
    assert [entry["take"] for entry in ranking] == [str(broken), reports[1].take]  # worst first: the failed take
    assert ranking[1]["quality_score"] == reports[1].summaries["qa"]["quality_score"] and ranking[0]["quality_score"] is None
    metrics = json.loads((qa / "metrics.json").read_text())
    good = ranking[1]
    assert good["quality_by_part"] == {part: metrics["parts"][part]["label_quality_percent"] for part in PART_NAMES}
    labels = {reason: sum(metrics["parts"][part]["flagged_frames_by_reason"][reason] for part in PART_NAMES) for reason in REASONS}
    assert good["top_reason"] == max(labels, key=labels.get) and good["top_reason_labels"] == max(labels.values())
    frames = {}
    for stretch in metrics["stretches"]:
        if stretch["camera"]:
            frames[stretch["camera"]] = frames.get(stretch["camera"], 0) + stretch["last"] - stretch["first"] + 1
    assert good["culprit_camera"] == max(frames, key=frames.get) and good["culprit_camera_frames"] == max(frames.values())
    page = (qa.parent.parent / "batch_report.html").read_text()
    assert f"href='{report.take}/qa/report.html'" in page and "FAILED" in page
    assert page.index("FAILED") < page.index(f"href='{report.take}/qa/report.html'")
    row = page[page.index(f"data-take='{report.take}'") :]
    assert all(f"{good['quality_by_part'][part]:.1f} %" in row for part in PART_NAMES) and good["top_reason"] in row and good["culprit_camera"] in row


def test_overlay_draws_detections_at_their_own_place():
    """A detection drawn off its place reads as a reprojection error that is not there."""
    from stages.qa.overlay import draw_exo

    detected = np.full((59, 3), np.nan)
    detected[5] = (200.0, 120.0, 0.9)
    for scale in (1.0, 0.5):
        canvas = draw_exo(np.zeros((300, 400, 3), np.uint8), np.zeros((59, 2)), np.zeros(59, bool), np.full(59, np.nan), detected, scale, 3.0, 15.0)
        ys, xs = np.nonzero(canvas.max(axis=2) > 0)
        centre = np.array([xs.mean(), ys.mean()])
        assert np.abs(centre - detected[5, :2] * scale).max() <= 1.0, (scale, centre)


def test_ego_camera_of_a_released_camera_pose_json_is_not_drawn_on_the_fisheye_video(rendered, tmp_path):
    """A release's camera_pose.json gives the ego camera as the undistorted 512 x 512 pinhole
    without image size: its pixels are not in the fisheye video's image, so QA says so and
    draws no ego overlay (and does not fail on the video orientation)."""
    from pipeline.formats.calibration import write_camera_pose_json
    from pipeline.formats.take_folder import CAMERA_POSE_JSON
    from triangulation.cameras import MovingCamera
    from triangulation.visibility import linear_camera

    take, _, qa = rendered
    take_dir = tmp_path / "take"
    shutil.copytree(qa.parent.parent.parent / "take", take_dir)
    released = MovingCamera(take.ego.name, linear_camera(512, 512, 150.0), take.ego.R, take.ego.t)
    write_camera_pose_json(take_dir / CAMERA_POSE_JSON, take.exo_cameras, released)
    config = load_config(overrides=PRECOMPUTED + ["take.ego_pose_prefer=camera_pose", "take.ego_video_orientation=rotated_cw90", "qa.recording=false"])
    report = runner.run_take(take_dir, tmp_path / "out", config)
    out = tmp_path / "out" / report.take / "qa"
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["ego"]["pose_source"] == "camera_pose_json"
    assert metrics["ego"]["video_overlay"].startswith("not drawn: ") and "pinhole" in metrics["ego"]["video_overlay"]
    assert not (out / f"overlay_{take.ego.name}.mp4").exists()
    assert all((out / f"overlay_{camera.name}.mp4").is_file() for camera in take.exo_cameras)
    assert "not drawn" in (out / "report.html").read_text()


def test_videos_shorter_than_the_take_are_named_in_the_summary(rendered, tmp_path):
    """Videos that end before the take (cut to 5 frames, before the flagged frames whose
    thumbnails the report wants): QA still writes everything, names each camera and the
    first frame it lost, and the mosaic keeps the take's timing (black tiles)."""
    from pipeline.formats.video import VideoWriter

    take, _, qa = rendered
    source = qa.parent.parent.parent / "take"
    take_dir = tmp_path / "take"
    shutil.copytree(source, take_dir)
    for video in (take_dir / "frame_aligned_videos").glob("*.mp4"):
        with VideoWriter(video, take.config.fps) as writer:
            for _, image in iter_frames(source / "frame_aligned_videos" / video.name, 0, 5):
                writer.write(image)
    report = runner.run_take(take_dir, tmp_path / "out", load_config(overrides=PRECOMPUTED + ["qa.recording=false"]))
    out = tmp_path / "out" / report.take / "qa"
    assert load_npz(out / "flags.npz")["flags"][5:].any()  # thumbnails wanted where no video is left
    errors = report.summaries["qa"]["video_decode_errors"]
    cameras = [camera.name for camera in take.exo_cameras] + [take.ego.name]
    assert sorted(error["camera"] for error in errors) == sorted(cameras)
    assert all(error["first_frame"] == 5 and error["frames_missing"] == FRAMES - 5 for error in errors)
    assert video_info(out / "overlay_cam01.mp4").num_frames == 5 and video_info(out / "overlay_mosaic.mp4").num_frames == FRAMES
    assert (out / "report.html").is_file()


def test_thumbnails_without_overlay_videos_decode_only_their_frames(rendered, monkeypatch):
    """Without overlay videos, each thumbnail seeks to its own frame (not every frame between the first and last)."""
    import stages.qa.overlay as overlay

    take, _, _ = rendered
    views = len(take.exo_cameras)
    source = rendered[2].parent.parent.parent / "take" / "frame_aligned_videos"
    videos = [source / f"{camera.name}.mp4" for camera in take.exo_cameras]
    inputs = overlay.OverlayInputs(
        exo_names=[camera.name for camera in take.exo_cameras],
        exo_videos=videos,
        exo_pixels=np.zeros((views, FRAMES, 59, 2)),
        exo_visible=np.zeros((views, FRAMES, 59), bool),
        errors=np.full((views, FRAMES, 59), np.nan),
        keypoints=np.full((views, FRAMES, 59, 3), np.nan),
        ego_name=None,
        ego_video=None,
        ego_pixels=None,
        ego_visible=None,
        quality=_no_flags(views, FRAMES),
        culprits=np.full((FRAMES, 3), -1),
    )
    decoded = []
    iter_lockstep = overlay.iter_frames_lockstep

    def counting(*args, **kwargs):
        for frame, images in iter_lockstep(*args, **kwargs):
            decoded.append(frame)
            yield frame, images

    monkeypatch.setattr(overlay, "iter_frames_lockstep", counting)
    settings = load_config().qa
    result = overlay.render_overlays(inputs, None, (0, FRAMES), take.config.fps, settings, [(2, 0, -1), (20, 1, 0), (20, 2, 1)])
    assert set(result.thumbnails) == {(2, 0, -1), (20, 1, 0), (20, 2, 1)} and result.frames == 0
    assert [result.thumbnails[key][1] for key in [(20, 1, 0), (20, 2, 1)]] == ["cam01", "cam02"]  # the view asked for
    assert decoded == [2, 20]


def _no_flags(views: int, frames: int):
    """QualityFlags without any flag (for overlays drawn outside the stage)."""
    from fitting.quality import VIEW_REASONS, QualityFlags

    per_reason = (frames, len(PART_NAMES), len(REASONS))
    per_view = (views, frames, len(PART_NAMES), len(VIEW_REASONS))
    return QualityFlags(
        flags=np.zeros(per_reason, bool), value=np.full(per_reason, np.nan), threshold=np.full(per_reason, np.nan), camera=np.full(per_reason, -1),
        view_tripped=np.zeros(per_view, bool), view_value=np.full(per_view, np.nan), view_threshold=np.full(per_view, np.nan),
        view_error_px=np.full(per_view[:3], np.nan), view_shift_px=np.full(per_view[:3], np.nan), camera_offset_px=np.full((views, len(PART_NAMES)), np.nan),
        offset_cameras=np.zeros((views, len(PART_NAMES)), bool), score=np.ones((frames, len(PART_NAMES))),
    )  # fmt: skip


def test_thumbnail_crops_the_part_not_the_whole_frame():
    from stages.qa.overlay import _crop

    image = np.zeros((540, 960, 3), np.uint8)
    image[150:350, 400:500] = 255  # the part's extent: 100 x 200 px
    pixels = np.array([[400.0, 150.0], [499.0, 349.0]])
    thumbnail = _crop(image, pixels, 1.0)
    ys, xs = np.nonzero(thumbnail[..., 0] > 128)
    assert (ys.max() - ys.min() + 1) / max(thumbnail.shape[:2]) > 0.75  # the part fills the thumbnail


@pytest.mark.parametrize("damage", [b"not gzip at all", b"\x1f\x8b\x08\x00truncated"])
def test_a_damaged_scene_point_file_is_left_out_of_the_recording(rendered, tmp_path, damage):
    """The semidense points only feed the recording: a damaged file costs them, not the QA."""
    pytest.importorskip("rerun", reason="rerun-sdk (extra qa3d) writes the recording")
    _, _, qa = rendered
    take_dir = tmp_path / "take"
    shutil.copytree(qa.parent.parent.parent / "take", take_dir)
    (take_dir / "trajectory" / "semidense_points.csv.gz").write_bytes(damage)
    config = load_config(overrides=PRECOMPUTED + ["qa.overlay_videos=false", "qa.report=false"])
    report = runner.run_take(take_dir, tmp_path / "out", config)
    summary = report.summaries["qa"]
    assert summary["scene_points"].startswith(f"left out: {take_dir / 'trajectory' / 'semidense_points.csv.gz'}: ")
    assert summary["scene_points"].count("semidense_points.csv.gz") == 1  # the path once
    assert (tmp_path / "out" / report.take / "qa" / "recording.rrd").is_file()
    assert (tmp_path / "out" / report.take / "qa" / "metrics.json").is_file()


def test_bone_length_whiskers_stop_at_percentiles():
    """One wrong frame's 1.8 m forearm must not set the plot's scale."""
    from stages.qa.report import bone_length_spread

    rng = np.random.default_rng(0)
    lengths = 0.25 + 0.005 * rng.standard_normal((300, 3))
    lengths[7, 0] = 1.8
    lengths[:, 2] = np.nan  # a bone never measured
    spread = bone_length_spread(lengths)
    assert np.all(spread["high"][:2] < 0.27) and np.all(spread["low"][:2] > 0.23) and np.isnan(spread["high"][2])
    assert np.allclose(spread["median"][:2], np.median(lengths[:, :2], axis=0))


def test_recording_clears_the_ego_camera_where_it_has_no_pose(tmp_path):
    """Frames without an ego pose show no ego camera (not the last pose); every recording has its own id."""
    pytest.importorskip("rerun", reason="rerun-sdk (extra qa3d) writes the recording")
    from rerun.chunk import RrdReader

    from stages.qa.recording import write_recording
    from triangulation.visibility import linear_camera

    frames = 30
    ego_R = np.tile(np.eye(3), (frames, 1, 1))
    ego_t = np.zeros((frames, 3))
    ego_R[10:14] = np.nan
    points = np.zeros((frames, 59, 3))
    colours = np.zeros((frames, 59, 3), np.uint8)
    ids = []
    for name in ("a.rrd", "b.rrd"):
        write_recording(tmp_path / name, "take", points, colours, [], ego_R, ego_t, linear_camera(512, 512, 150.0), (512, 512))
        (entry,) = RrdReader(tmp_path / name).recordings()
        ids.append(entry.recording_id)
        summary = RrdReader(tmp_path / name).store(store=entry).summary().splitlines()
        ego = [line for line in summary if line.startswith("/world/ego ") and "timelines=['frame']" in line]
        rows = {("Clear" if "Clear" in line else "Pinhole" if "Pinhole" in line else "Transform"): int(line.split()[1].split("=")[1]) for line in ego}
        assert rows == {"Transform": 26, "Pinhole": 26, "Clear": 4}, ego
    assert ids[0] != ids[1]


def test_batch_report_covers_every_take_in_out_and_report_refreshes_it(tmp_path):
    """Two takes run by two `run` invocations both appear; `report` with other thresholds rescores one in the batch files."""
    from workflow.cli import main

    out = tmp_path / "out"
    names = []
    for seed in (31, 32):
        take_dir = tmp_path / f"take{seed}"
        synthesize_take(take_dir, SynthConfig(seed=seed, num_frames=40), render=False)
        config = load_config(overrides=PRECOMPUTED + ["qa.report=false", "qa.recording=false"])
        names.append(runner.run_batch([take_dir], out, config)[0].take)
    summary = json.loads((out / "batch_summary.json").read_text())
    assert sorted(entry["take"] for entry in summary["ranking"]) == sorted(names) and all(entry["ok"] for entry in summary["ranking"])
    assert [report["take"] for report in summary["reports"]] == [names[1]]  # the reports of the last run
    assert all(name in (out / "batch_report.html").read_text() for name in names)
    assert main(["report", str(out / names[0]), "--set", "qa.flags.bone_deviation=0.0001"]) == 0  # nearly every frame flagged
    rescored = {entry["take"]: entry["quality_score"] for entry in json.loads((out / "batch_summary.json").read_text())["ranking"]}
    scores = {entry["take"]: entry["quality_score"] for entry in summary["ranking"]}
    assert rescored[names[0]] < scores[names[0]] and rescored[names[1]] == scores[names[1]]
    assert list(rescored) == sorted(rescored, key=rescored.get) and list(rescored)[0] == names[0]  # worst first
    assert f"{rescored[names[0]]:.1f} %" in (out / "batch_report.html").read_text()


def test_colour_ramp_starts_at_the_flag_threshold_and_flagged_parts_are_boxed():
    """A joint at the flag threshold is not green; the view's flagged part gets a red box."""
    from stages.qa.overlay import _GOOD, draw_exo, error_colours

    threshold = load_config().qa.flags.reprojection_error_px
    colours = error_colours(np.array([threshold - 0.01, threshold, 15.0, np.nan]), threshold, 15.0)
    assert tuple(colours[0]) == _GOOD and tuple(colours[1]) != _GOOD and colours[1, 1] > 200 and colours[1, 0] == 255  # yellow at the threshold
    assert tuple(colours[2]) == (255, 0, 0) and tuple(colours[3]) == (150, 150, 150)
    pixels = np.full((59, 2), 150.0)
    pixels[skeleton.BODY, 0] = np.linspace(100, 200, 17)
    visible = np.zeros(59, bool)
    visible[skeleton.BODY] = True
    args = (pixels, visible, np.full(59, 1.0), np.full((59, 3), np.nan), 1.0, threshold, 15.0)
    plain = draw_exo(np.zeros((300, 400, 3), np.uint8), *args)  # (draws into the image it is given)
    boxed = draw_exo(np.zeros((300, 400, 3), np.uint8), *args, flagged={0: ["part_shift"]})
    red = (boxed[..., 0] > 200) & (boxed[..., 1] < 80) & ~((plain[..., 0] > 200) & (plain[..., 1] < 80))
    ys, xs = np.nonzero(red)
    assert red.sum() > 100 and xs.min() <= 92 and xs.max() >= 208  # a box around the part, 8 px out


def test_labels_are_readable_on_a_bright_background():
    from stages.qa.overlay import _label

    canvas = np.full((60, 300, 3), 255, np.uint8)
    _label(canvas, "cam01  frame 12", (6, 30))
    box = canvas[14:36, 6:120]
    assert np.median(box) < 100 and box.max() > 200  # a dark box with bright text on white


def test_ego_overlay_colours_edges_by_error_and_keeps_the_hand_colours():
    from stages.qa.overlay import _HAND_COLOURS, draw_ego

    pixels = np.zeros((59, 2))
    hand = skeleton.RIGHT_HAND
    pixels[hand, 0] = np.linspace(50, 250, hand.stop - hand.start)
    pixels[hand, 1] = 100
    visible = np.zeros(59, bool)
    visible[hand] = True
    errors = np.full(59, 30.0)  # far over the threshold: red edges
    canvas = draw_ego(np.zeros((200, 300, 3), np.uint8), pixels, visible, 1.0, errors, 5.0, 15.0)
    red = ((canvas[..., 0] > 200) & (canvas[..., 1] < 60) & (canvas[..., 2] < 60)).sum()
    orange = (np.abs(canvas.astype(int) - np.array(_HAND_COLOURS["right_hand"])).max(axis=2) < 40).sum()
    assert red > 50 and orange > 20
