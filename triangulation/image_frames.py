"""How a video's frame relates to the image its camera was calibrated on.

Real calibrations do not always state the video's size. A Qualisys or OpenCV
calibration may give the sensor's or the codec's coded size (H.264 codes frames in
16-pixel macroblocks: a 1080-row video is coded as 1088 rows and cropped on output),
and a video may be the calibrated image resized (a 4K calibration, a 1080p proxy). This
module tells those cases from a calibration of another camera:

- ``same``: the sizes are equal;
- ``edges``: width and height each within ``max_edge_px`` of the calibration's: the same
  image with rows or columns cropped or padded at its right and bottom edges (where
  codecs crop and pad), so pixel coordinates and the principal point are unchanged;
- ``scaled``: the video is the calibrated image resized by one factor ``s`` in both
  directions (each size rounds to the other's times ``s``): focal lengths become
  ``s f`` and the principal point ``s (c + 0.5) - 0.5`` (pixel centres at integers, as
  OpenCV's resize maps them); distortion is in normalised coordinates and unchanged;
- otherwise (None) the calibration is not this video's camera.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from triangulation.cameras import Camera

FRAME_SAME, FRAME_EDGES, FRAME_SCALED = "same", "edges", "scaled"


@dataclass(frozen=True)
class ImageFrameMatch:
    """A video frame against its calibration: ``kind`` (``same``, ``edges``, ``scaled``),
    both sizes (width, height) in pixels and the scale from calibration to video pixels."""

    kind: str
    calibration_size: tuple[int, int]
    video_size: tuple[int, int]
    scale: float = 1.0

    def describe(self) -> str:
        """A sentence saying what was assumed, for logs, summaries and the QA report."""
        (cw, ch), (vw, vh) = self.calibration_size, self.video_size
        sizes = f"video {vw}x{vh}, calibration {cw}x{ch}"
        if self.kind == FRAME_SAME:
            return f"{sizes}: the same image"
        if self.kind == FRAME_EDGES:
            changes = [f"{abs(delta)} {what} {'fewer' if delta < 0 else 'more'}" for delta, what in ((vw - cw, "columns"), (vh - ch, "rows")) if delta]
            return (
                f"{sizes}: {' and '.join(changes)} in the video, taken as the same image cropped or padded at its "
                "right/bottom edges (pixel coordinates and principal point unchanged)"
            )
        return f"{sizes}: the calibrated image resized by {self.scale:.6g} (focal lengths and principal point scaled)"

    def as_dict(self) -> dict:
        """JSON-ready: kind, sizes, scale and the sentence."""
        return {
            "kind": self.kind,
            "calibration_size": list(self.calibration_size),
            "video_size": list(self.video_size),
            "scale": self.scale,
            "assumed": self.describe(),
        }


def match_image_frame(calibration_size: tuple[int, int], video_size: tuple[int, int], max_edge_px: int, allow_scale: bool) -> ImageFrameMatch | None:
    """How ``video_size`` relates to ``calibration_size`` (both (width, height) px), or None.

    ``max_edge_px``: the most rows or columns a codec crops or pads at an edge (0: sizes
    must be equal or scaled); ``allow_scale``: accept an exact resize. An edge change is
    preferred to a scale (a 1080-wide video of a 1088-wide calibration is cropped, not
    resized by 0.9926 with 14 rows padded).
    """
    cw, ch = (int(n) for n in calibration_size)
    vw, vh = (int(n) for n in video_size)
    if (cw, ch) == (vw, vh):
        return ImageFrameMatch(FRAME_SAME, (cw, ch), (vw, vh))
    if abs(vw - cw) <= max_edge_px and abs(vh - ch) <= max_edge_px:
        return ImageFrameMatch(FRAME_EDGES, (cw, ch), (vw, vh))
    if allow_scale:
        scale = vw / cw
        if abs(round(ch * scale) - vh) == 0 and abs(round(vh / scale) - ch) == 0:
            return ImageFrameMatch(FRAME_SCALED, (cw, ch), (vw, vh), scale)
    return None


def camera_in_video_frame(camera: Camera, match: ImageFrameMatch) -> Camera:
    """``camera`` for pixels of the video frame ``match`` describes (its image size the
    video's; a scale applied to the focal lengths and principal point)."""
    model = camera.model
    if match.kind == FRAME_SCALED:
        s = match.scale
        model = dataclasses.replace(model, fx=s * model.fx, fy=s * model.fy, cx=s * (model.cx + 0.5) - 0.5, cy=s * (model.cy + 0.5) - 0.5)
    field_of_view = camera.field_of_view
    if field_of_view is not None and field_of_view.valid_radius_px is not None and match.kind == FRAME_SCALED:
        field_of_view = dataclasses.replace(field_of_view, valid_radius_px=field_of_view.valid_radius_px * match.scale)
    return dataclasses.replace(camera, model=model, image_size=match.video_size, field_of_view=field_of_view)
