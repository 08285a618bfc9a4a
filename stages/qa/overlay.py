"""Overlay videos and report thumbnails, streamed: one decoded frame per view at a time.

- Every exo view: the refined skeleton reprojected (edges and joints coloured by the
  joint's reprojection error: green under the flag threshold
  ``qa.flags.reprojection_error_px``, from it yellow through orange to red at
  ``error_bad_px``; grey where the view saw nothing) with the detected 2D at its own
  place (thin cyan diagonal crosses, wider than the joints' dots: the gap between a
  cross and its dot is the reprojection error); a red box, named with its reasons,
  around each part the view is flagged for at that frame (:data:`fitting.quality.VIEW_REASONS`).
- The ego view: the projected body and hands on the raw fisheye frames, in the video's
  orientation, edges coloured by the same ramp (the joint's median error over the exo
  views), joints as small dots of their part's colour (white body, magenta / orange
  hands).
- A legend (:func:`legend_image`) in a corner of every video and in the mosaic's spare
  cell, and in the report.
- A mosaic of all views with the frame number and the frame's flags burnt in: per
  flagged part the stretch's culprit camera and each reason's value and threshold
  (:func:`fitting.quality.frame_evidence`).
- Every video carries its frame number as text and as a binary code
  (:func:`burn_frame_code`, read back by :func:`read_frame_code`): the report's player
  and its tests can tell which frame is shown.
- Thumbnails for the report: for chosen (frame, part, view) triples (the stretch's
  shown frame and culprit view), a crop of that view's overlay around the part,
  labelled with the camera and frame, JPEG bytes.

Labels are drawn on a dark box: readable on any background.

Memory does not grow with the take's length: frames are decoded, drawn, encoded and
dropped one at a time (:func:`pipeline.formats.video.iter_frames_lockstep`).
"""

from __future__ import annotations

import contextlib
import functools
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from fitting import skeleton
from fitting.quality import VIEW_REASONS, QualityFlags, frame_evidence
from pipeline.formats.video import VideoWriter, iter_frames_lockstep

if TYPE_CHECKING:
    from pipeline.config import QaConfig

_EDGES = np.asarray(skeleton.DRAW_EDGES)
_HAND_COLOURS = {"left_hand": (255, 80, 255), "right_hand": (255, 160, 40)}  # RGB
_BODY_COLOUR = (255, 255, 255)
_UNSEEN = (150, 150, 150)
_DETECTED = (0, 230, 255)
_THUMBNAIL_PX = 240
# Review videos: fast encoding (x264 ultrafast, constant quality 23) over small files; the
# overlays are for looking, not for measuring.
_ENCODING = {"preset": "ultrafast", "crf": 23}


@dataclass(frozen=True)
class OverlayInputs:
    """What the overlays draw. ``exo_pixels (views, frames, 59, 2)`` / ``exo_visible``; ``errors
    (views, frames, 59)`` px (NaN: not observed); ``keypoints (views, frames, 59, 3)``;
    ``ego_pixels (frames, 59, 2)`` / ``ego_visible`` in the ego video's orientation (None
    without an ego camera); ``quality``: the flags and their evidence; ``culprits (frames,
    parts)``: the culprit view of the stretch holding each flagged frame (-1: none;
    :func:`fitting.quality.stretch_culprits`)."""

    exo_names: list[str]
    exo_videos: list[Path | None]
    exo_pixels: np.ndarray
    exo_visible: np.ndarray
    errors: np.ndarray
    keypoints: np.ndarray
    ego_name: str | None
    ego_video: Path | None
    ego_pixels: np.ndarray | None
    ego_visible: np.ndarray | None
    quality: QualityFlags
    culprits: np.ndarray


@dataclass
class OverlayResult:
    """Files written (name -> path), stills for the recording ``{view: [(frame, jpeg bytes,
    scale from full-resolution pixels)]}``, thumbnails ``{(frame, part, view): (jpeg bytes, the
    camera shown)}``, frames
    drawn, views without a video, and the views whose video could not be decoded from
    some frame on: ``{camera, file, first_frame, frames_missing, reason}``, one per view
    (the first frame lost)."""

    files: dict[str, Path] = field(default_factory=dict)
    stills: dict[str, list[tuple[int, bytes, float]]] = field(default_factory=dict)
    thumbnails: dict[tuple[int, int, int], tuple[bytes, str]] = field(default_factory=dict)
    frames: int = 0
    views_without_video: list[str] = field(default_factory=list)
    decode_errors: list[dict] = field(default_factory=list)

    def note_decode_errors(self, errors: list[dict]) -> None:
        """Keep the first lost frame of each camera."""
        for error in errors:
            known = next((entry for entry in self.decode_errors if entry["camera"] == error["camera"]), None)
            if known is None:
                self.decode_errors.append(dict(error))
            elif error["first_frame"] < known["first_frame"]:
                known.update(error)


_GOOD = (0, 200, 0)
_FLAG_BOX = (255, 40, 40)


def error_colours(errors: np.ndarray, start_px: float, bad_px: float) -> np.ndarray:
    """RGB uint8 ``(..., 3)``: green under ``start_px`` (the flag threshold); from it yellow,
    through orange, to red at ``bad_px``; grey for NaN."""
    finite = np.nan_to_num(errors, nan=0.0)
    level = np.clip((finite - start_px) / max(bad_px - start_px, 1e-9), 0.0, 1.0)
    colours = np.stack([np.full_like(level, 255.0), 230.0 * (1.0 - level), np.zeros_like(level)], axis=-1).astype(np.uint8)
    colours[finite < start_px] = _GOOD
    colours[~np.isfinite(errors)] = _UNSEEN
    return colours


def legend_image(width: int, start_px: float, bad_px: float, full: bool = True) -> np.ndarray:
    """The overlays' legend, RGB ``(height, width, 3)`` on black: the error ramp with its
    numbers and (``full``) what the marks mean; ``full=False``: the ramp and marks in two
    short lines for a video's corner."""
    scale = 0.45 if full else 0.38
    lines = 7 if full else 2
    height = 26 + 17 * lines
    canvas = np.zeros((height, width, 3), np.uint8)
    bar_x0, bar_x1, bar_y = 8, width - 8, 6
    errors = np.linspace(0.0, bad_px * 1.2, bar_x1 - bar_x0)
    canvas[bar_y : bar_y + 8, bar_x0:bar_x1] = error_colours(errors, start_px, bad_px)[None]
    for value in (start_px, bad_px):
        x = bar_x0 + int(round(value / (bad_px * 1.2) * (bar_x1 - bar_x0)))
        canvas[bar_y - 2 : bar_y + 10, x] = 255
    y = bar_y + 22
    texts = (
        [f"error: green < {start_px:g} px (flag threshold); yellow {start_px:g} -> red {bad_px:g} px", "grey: joint not seen in this view"]
        + ["cyan x: the detected 2D (its gap to the dot: the error)", "red box: a part this view is flagged for (reasons above it)",
           "ego: lines by the joint's median exo error; dots white body,", "     magenta left hand, orange right hand",
           "mosaic: per flagged part [culprit camera]: reason value > limit"]
        if full
        else [f"green < {start_px:g} px < yellow..red {bad_px:g} px; grey unseen", "cyan x detected 2D; red box: flagged part"]
    )  # fmt: skip
    for text in texts:
        cv2.putText(canvas, text, (8, y), cv2.FONT_HERSHEY_SIMPLEX, scale, (235, 235, 235), 1, cv2.LINE_AA)
        y += 17
    if full:
        cv2.drawMarker(canvas, (width - 20, bar_y + 22 + 2 * 17 - 4), _DETECTED, cv2.MARKER_TILTED_CROSS, 11, 1)
    return canvas


def _paste_legend(canvas: np.ndarray, legend: np.ndarray) -> None:
    """``legend`` blended into the bottom left corner of ``canvas`` (in place)."""
    height, width = min(legend.shape[0], canvas.shape[0]), min(legend.shape[1], canvas.shape[1])
    region = canvas[canvas.shape[0] - height :, :width]
    region[:] = (0.25 * region + 0.75 * legend[:height, :width]).astype(np.uint8)


def _scale_for(width: int, max_width: int) -> float:
    return min(1.0, max_width / float(width))


def _resized(image: np.ndarray, scale: float) -> np.ndarray:
    if scale == 1.0:
        return image
    height, width = image.shape[:2]
    size = (max(2, int(round(width * scale)) // 2 * 2), max(2, int(round(height * scale)) // 2 * 2))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def _point(pixel: np.ndarray, scale: float) -> tuple[int, int]:
    return int(round(pixel[0] * scale)), int(round(pixel[1] * scale))


def draw_exo(
    image: np.ndarray, pixels: np.ndarray, visible: np.ndarray, errors: np.ndarray, detected: np.ndarray, scale: float, start_px: float, bad_px: float,
    flagged: dict[int, list[str]] | None = None,
) -> np.ndarray:  # fmt: skip
    """One exo frame: ``pixels (59, 2)`` reprojected, ``visible (59,)``, ``errors (59,)`` px,
    ``detected (59, 3)`` 2D keypoints; coordinates are full-resolution pixels, drawn at
    ``scale``; ``flagged``: part index -> the reasons the view tripped (a box around each)."""
    canvas = np.ascontiguousarray(image)
    colours = error_colours(errors, start_px, bad_px)
    for a, b in _EDGES[visible[_EDGES[:, 0]] & visible[_EDGES[:, 1]]]:
        colour = tuple(int(c) for c in np.maximum(colours[a], colours[b]))
        cv2.line(canvas, _point(pixels[a], scale), _point(pixels[b], scale), colour, 2, cv2.LINE_AA)
    for j in np.flatnonzero(visible):
        cv2.circle(canvas, _point(pixels[j], scale), 3, tuple(int(c) for c in colours[j]), -1, cv2.LINE_AA)
    for j in np.flatnonzero(np.isfinite(detected[:, :2]).all(axis=1)):  # where they are: a cross through the joint's dot
        cv2.drawMarker(canvas, _point(detected[j], scale), _DETECTED, cv2.MARKER_TILTED_CROSS, 11, 1)
    for part, reasons in (flagged or {}).items():
        joints = list(skeleton.PARTS.values())[part]
        seen = np.concatenate([pixels[joints][visible[joints]], detected[joints, :2][np.isfinite(detected[joints, :2]).all(axis=1)]])
        if not len(seen):
            continue
        (x0, y0), (x1, y1) = _point(seen.min(axis=0), scale), _point(seen.max(axis=0), scale)
        cv2.rectangle(canvas, (x0 - 8, y0 - 8), (x1 + 8, y1 + 8), _FLAG_BOX, 2)
        _label(canvas, ", ".join(reasons), (max(0, x0 - 8), max(12, y0 - 12)), (255, 120, 120), 0.4)
    return canvas


def _part_colours() -> np.ndarray:
    """``(59, 3)`` RGB: white body joints, magenta left hand, orange right hand."""
    colours = np.tile(np.array(_BODY_COLOUR, np.uint8), (59, 1))
    for part, colour in _HAND_COLOURS.items():
        colours[skeleton.PARTS[part]] = colour
    return colours


_PART_COLOURS = _part_colours()


def draw_ego(image: np.ndarray, pixels: np.ndarray, visible: np.ndarray, scale: float, errors: np.ndarray, start_px: float, bad_px: float) -> np.ndarray:
    """One ego frame: the projected skeleton where visible, edges coloured by ``errors
    (59,)`` px on the exo overlays' ramp, joints as small dots of their part's colour."""
    canvas = np.ascontiguousarray(image)
    colours = error_colours(errors, start_px, bad_px)
    for a, b in _EDGES[visible[_EDGES[:, 0]] & visible[_EDGES[:, 1]]]:
        colour = tuple(int(c) for c in np.maximum(colours[a], colours[b]))
        cv2.line(canvas, _point(pixels[a], scale), _point(pixels[b], scale), colour, 2, cv2.LINE_AA)
    for j in np.flatnonzero(visible):
        cv2.circle(canvas, _point(pixels[j], scale), 2, tuple(int(c) for c in _PART_COLOURS[j]), -1, cv2.LINE_AA)
    return canvas


def _label(canvas: np.ndarray, text: str, origin: tuple[int, int], colour=(255, 255, 255), scale: float = 0.5) -> None:
    """``text`` at ``origin`` (its baseline's left end) on a dark box: readable on any background."""
    (width, height), baseline = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    x, y = origin
    x0, y0, x1, y1 = max(0, x - 3), max(0, y - height - 3), min(canvas.shape[1], x + width + 3), min(canvas.shape[0], y + baseline + 2)
    canvas[y0:y1, x0:x1] = (canvas[y0:y1, x0:x1] * 0.25).astype(canvas.dtype)
    cv2.putText(canvas, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, colour, 1, cv2.LINE_AA)


# The frame code: FRAME_CODE_BITS blocks of FRAME_CODE_BLOCK px in the top right corner,
# white for a set bit (most significant first), on a black row a block high.
FRAME_CODE_BITS = 20
FRAME_CODE_BLOCK = 8


def burn_frame_code(canvas: np.ndarray, frame: int) -> None:
    """Write ``frame`` as a binary code of blocks into the top right corner of ``canvas``."""
    bits = (int(frame) >> np.arange(FRAME_CODE_BITS - 1, -1, -1)) & 1
    size, width = FRAME_CODE_BLOCK, FRAME_CODE_BITS * FRAME_CODE_BLOCK
    row = np.repeat(bits.astype(np.uint8) * 255, size)
    canvas[0:size, canvas.shape[1] - width :] = row[None, :, None]


def read_frame_code(image: np.ndarray) -> int:
    """The frame number :func:`burn_frame_code` wrote into ``image (H, W, 3)`` (decoded video frame)."""
    size, width = FRAME_CODE_BLOCK, FRAME_CODE_BITS * FRAME_CODE_BLOCK
    strip = image[1 : size - 1, image.shape[1] - width :].astype(np.float64).mean(axis=(0, 2))
    bits = strip.reshape(FRAME_CODE_BITS, size)[:, 1:-1].mean(axis=1) > 127
    return int((bits.astype(np.int64) << np.arange(FRAME_CODE_BITS - 1, -1, -1)).sum())


def _letterboxed(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """``image`` scaled to fit ``width x height`` (aspect kept), centred on black."""
    scale = min(width / image.shape[1], height / image.shape[0])
    size = (max(1, int(image.shape[1] * scale)), max(1, int(image.shape[0] * scale)))
    canvas = np.zeros((height, width, 3), dtype=np.uint8)
    x0, y0 = (width - size[0]) // 2, (height - size[1]) // 2
    canvas[y0 : y0 + size[1], x0 : x0 + size[0]] = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    return canvas


_FLAG_LINES = 3  # one per part
_LINE_PX = 18


def mosaic(tiles: list[np.ndarray], frame: int, flag_lines: list[str], width: int, aspect: float, spare: np.ndarray | None = None) -> np.ndarray:
    """All (labelled) views in a grid ``width`` pixels wide of ``aspect`` (height / width)
    cells, with the frame number and the frame's flag lines (one per flagged part) below;
    ``spare`` fills the grid's empty cell (the legend)."""
    columns = 3 if len(tiles) > 4 else 2
    tile_w = width // columns // 2 * 2
    tile_h = max(2, int(round(tile_w * aspect)) // 2 * 2)
    rows = -(-len(tiles) // columns)
    canvas = np.zeros((rows * tile_h + _LINE_PX * (_FLAG_LINES + 1) + 6, columns * tile_w, 3), dtype=np.uint8)
    cells = list(tiles) + ([spare] if spare is not None and len(tiles) < rows * columns else [])
    for index, tile in enumerate(cells):
        row, column = divmod(index, columns)
        canvas[row * tile_h : (row + 1) * tile_h, column * tile_w : (column + 1) * tile_w] = _letterboxed(tile, tile_w, tile_h)
    _label(canvas, f"frame {frame}", (8, rows * tile_h + 16))
    characters = max(20, canvas.shape[1] // 9)
    for line, text in enumerate(flag_lines[:_FLAG_LINES]):
        _label(canvas, text if len(text) <= characters else text[: characters - 3] + "...", (8, rows * tile_h + 16 + _LINE_PX * (line + 1)), (255, 110, 110))
    burn_frame_code(canvas, frame)
    return canvas


def _crop(image: np.ndarray, pixels: np.ndarray, scale: float) -> np.ndarray:
    """A square crop around ``pixels (k, 2)`` (full resolution) of a drawn image (their extent
    and a quarter more, at least 140 full-resolution pixels), resized to the thumbnail size."""
    points = pixels[np.isfinite(pixels).all(axis=1)] * scale
    height, width = image.shape[:2]
    if len(points) == 0:
        box = (0, 0, width, height)
    else:
        low, high = points.min(axis=0), points.max(axis=0)
        centre, side = (low + high) / 2, max(float((high - low).max()) * 1.25, 140.0 * scale)
        x0, y0 = int(max(0, centre[0] - side / 2)), int(max(0, centre[1] - side / 2))
        box = (x0, y0, int(min(width, x0 + side)), int(min(height, y0 + side)))
    crop = image[box[1] : box[3], box[0] : box[2]]
    factor = _THUMBNAIL_PX / max(crop.shape[:2])
    return cv2.resize(crop, (max(1, int(crop.shape[1] * factor)), max(1, int(crop.shape[0] * factor))), interpolation=cv2.INTER_AREA)


def _jpeg(image: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 80])
    return data.tobytes() if ok else b""


def _drawn_views(inputs: OverlayInputs, names: list[str], images: list, frame: int, settings: QaConfig) -> list[tuple[np.ndarray, float] | None]:
    """Every view's frame drawn and labelled at most ``overlay_max_width`` wide: ``(canvas,
    scale)``, None for a view without an image."""
    start, bad, max_width = settings.flags.reprojection_error_px, settings.error_bad_px, settings.overlay_max_width
    exo_count = len(inputs.exo_names)
    drawn = []
    for v, image in enumerate(images):
        if image is None:
            drawn.append(None)
            continue
        scale = _scale_for(image.shape[1], max_width)
        small = _resized(image, scale)
        if v < exo_count:
            tripped = inputs.quality.view_tripped[v, frame]  # (parts, view reasons)
            flagged = {p: [VIEW_REASONS[k] for k in np.flatnonzero(tripped[p])] for p in np.flatnonzero(tripped.any(axis=1))}
            canvas = draw_exo(
                small,
                inputs.exo_pixels[v, frame],
                inputs.exo_visible[v, frame],
                inputs.errors[v, frame],
                inputs.keypoints[v, frame],
                scale,
                start,
                bad,
                flagged,
            )
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # a joint no exo view saw: NaN, drawn grey
                errors = np.nanmedian(inputs.errors[:, frame], axis=0)
            canvas = draw_ego(small, inputs.ego_pixels[frame], inputs.ego_visible[frame], scale, errors, start, bad)
        _paste_legend(canvas, _corner_legend(canvas.shape[1], start, bad))
        _label(canvas, f"{names[v]}  frame {frame}", (6, 18))
        burn_frame_code(canvas, frame)
        drawn.append((canvas, scale))
    return drawn


@functools.lru_cache(maxsize=8)
def _corner_legend(width: int, start_px: float, bad_px: float) -> np.ndarray:
    """The short legend of a video's corner (drawn once per size and ramp)."""
    return legend_image(min(width, 330), start_px, bad_px, full=False)


def _views(inputs: OverlayInputs) -> tuple[list[str], list[Path | None]]:
    names = list(inputs.exo_names) + ([inputs.ego_name] if inputs.ego_name else [])
    return names, list(inputs.exo_videos) + ([inputs.ego_video] if inputs.ego_name else [])


def render_overlays(
    inputs: OverlayInputs,
    out_dir: Path | None,
    frame_range: tuple[int, int],
    fps: float,
    settings: QaConfig,
    thumbnails: list[tuple[int, int, int]],
    suffix: str = "",
) -> OverlayResult:
    """Write the overlay videos of ``frame_range`` into ``out_dir`` as
    ``overlay_<view><suffix>.mp4`` and ``overlay_mosaic<suffix>.mp4`` (None: no videos),
    streaming the frames, and cut the ``thumbnails`` ``(frame, part, view)``: in the same pass
    for frames inside the range, by seeking to each frame for the others.

    A view whose video ends early or cannot be decoded is left out from that frame on
    (its overlay video ends there; the mosaic shows it black) and listed in
    ``decode_errors``; frames no view could give are not in the mosaic."""
    result = OverlayResult()
    names, paths = _views(inputs)
    result.views_without_video = [name for name, path in zip(names, paths) if path is None]
    if all(path is None for path in paths):
        return result
    wanted: dict[int, list[tuple[int, int]]] = {}
    for frame, part, view in thumbnails:
        wanted.setdefault(frame, []).append((part, view))
    streamed = range(*frame_range) if out_dir is not None else range(0)
    if out_dir is not None:
        _write_videos(inputs, out_dir, frame_range, fps, settings, suffix, wanted, result)
    for frame in sorted(frame for frame in wanted if frame not in streamed):  # one seek per thumbnail
        errors: list[dict] = []
        for _, images in iter_frames_lockstep(paths, names, frame, frame + 1, fail=False, errors=errors):
            _cut_thumbnails(inputs, _drawn_views(inputs, names, images, frame, settings), frame, wanted[frame], result)
        result.note_decode_errors(errors)
    return result


def _cut_thumbnails(inputs: OverlayInputs, drawn: list, frame: int, wanted: list[tuple[int, int]], result: OverlayResult) -> None:
    if any(item is not None for item in drawn):
        for part, view in wanted:
            image, name = _thumbnail(inputs, drawn, frame, part, view)
            result.thumbnails[(frame, part, view)] = (_jpeg(image), name)


def _write_videos(
    inputs: OverlayInputs, out_dir: Path, frame_range: tuple[int, int], fps: float, settings: QaConfig, suffix: str, wanted: dict, result: OverlayResult
) -> None:
    """The streaming pass of :func:`render_overlays` (one decoded frame per view at a time)."""
    names, paths = _views(inputs)
    aspect = None  # of the mosaic's cells: the first view decoded
    legend = None
    wanted_stills = settings.recording_images if settings.recording else 0
    still_step = -(-(frame_range[1] - frame_range[0]) // wanted_stills) if wanted_stills else 0
    errors: list[dict] = []
    with contextlib.ExitStack() as stack:
        writers: dict[str, VideoWriter] = {}

        def write(name: str, image: np.ndarray) -> None:
            if name not in writers:
                path = out_dir / f"overlay_{name}{suffix}.mp4"
                writers[name] = stack.enter_context(VideoWriter(path, fps, width=image.shape[1], height=image.shape[0], **_ENCODING))
                result.files[f"overlay_{name}{suffix}"] = path
            writers[name].write(image)

        for frame, images in iter_frames_lockstep(paths, names, frame_range[0], frame_range[1], fail=False, errors=errors):
            drawn = _drawn_views(inputs, names, images, frame, settings)
            _cut_thumbnails(inputs, drawn, frame, wanted.get(frame, []), result)
            if still_step and (frame - frame_range[0]) % still_step == 0:
                _keep_stills(names, drawn, frame, result)
            for v, item in enumerate(drawn):
                if item is not None:
                    write(names[v], item[0])
                    aspect = aspect or item[0].shape[0] / item[0].shape[1]
            if aspect is None:  # no view has given a frame yet: nothing to lay out
                continue
            tiles = [item[0] if item is not None else np.zeros((2, 2, 3), np.uint8) for item in drawn]
            lines = frame_evidence(inputs.quality, inputs.culprits, frame, inputs.exo_names) if inputs.quality.flags[frame].any() else []
            if legend is None:
                legend = legend_image(420, settings.flags.reprojection_error_px, settings.error_bad_px)
            write("mosaic", mosaic(tiles, frame, lines, 2 * settings.overlay_max_width, aspect, legend))
            result.frames += 1
    result.note_decode_errors(errors)


_STILL_WIDTH = 480


def _keep_stills(names: list[str], drawn: list, frame: int, result: OverlayResult) -> None:
    """The drawn views of ``frame`` as small JPEG stills for the recording."""
    for name, item in zip(names, drawn):
        if item is not None:
            canvas, scale = item
            factor = min(1.0, _STILL_WIDTH / canvas.shape[1])
            result.stills.setdefault(name, []).append((frame, _jpeg(_resized(canvas, factor)), scale * factor))


def thumbnail_view(inputs: OverlayInputs, available: list[int], frame: int, part: int, view: int) -> int:
    """The view a thumbnail shows: ``view`` (the stretch's culprit) when it has an image;
    else (no culprit, or its video lost) the exo view with the most of the part's joints
    detected at ``frame``, ties to the lower index (-1: no exo view has an image)."""
    if view in available:
        return view
    if not available:
        return -1
    joints = list(skeleton.PARTS.values())[part]
    detected = np.isfinite(inputs.keypoints[available, frame, joints, 0]).sum(axis=1)
    return available[int(np.argmax(detected))]


def _thumbnail(inputs: OverlayInputs, drawn: list, frame: int, part: int, view: int) -> tuple[np.ndarray, str]:
    """The drawn ``view`` (:func:`thumbnail_view`) cropped around the part, labelled with
    its camera and the frame, and that camera's name (``drawn`` holds at least one view)."""
    joints = list(skeleton.PARTS.values())[part]
    exo = [v for v in range(len(inputs.exo_names)) if drawn[v] is not None]
    shown = thumbnail_view(inputs, exo, frame, part, view)
    if shown < 0:
        image, scale = next(item for item in drawn if item is not None)
        thumbnail, name = _crop(image, np.empty((0, 2)), scale), "no exo view"
    else:
        image, scale = drawn[shown]
        pixels = np.where(inputs.exo_visible[shown, frame, joints, None], inputs.exo_pixels[shown, frame, joints], np.nan)
        thumbnail, name = _crop(image, pixels, scale), inputs.exo_names[shown]
    thumbnail = np.ascontiguousarray(thumbnail)
    _label(thumbnail, f"{name}  frame {frame}", (5, thumbnail.shape[0] - 7), (255, 255, 120), 0.45)
    return thumbnail, name
