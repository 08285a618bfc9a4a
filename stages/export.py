"""Stage ``export``: 3D joints and their projections -> Ego-Exo4D annotation files, TRC.

One document per part (``body``: the 17 COCO joints; ``hand``: 21 left + 21 right)::

    {"<frame>": [{"metadata": {"take_uid", "take_name", "frame_number"},
                  "annotation3D": {"<joint>": {"x", "y", "z", "num_views_for_3d"}},
                  "annotation2D": {"<camera>": {"<joint>": {"x", "y", "placement": "auto"}}}}]}

A joint that was not reconstructed is absent (never zero); a 2D entry exists only
where the joint projects inside that camera's image, in front of it.
"""

from __future__ import annotations

import json

import numpy as np

from fitting.skeleton import BODY, JOINT_NAMES, LEFT_HAND, RIGHT_HAND
from pipeline.atomic import atomic_write_text
from pipeline.formats.arrays import load_arrays
from pipeline.formats.egoexo4d import annotation_document
from pipeline.formats.trc import write_trc
from stages.base import StageContext, StageSpec
from triangulation.cameras import Camera

EXPORT_PARTS = {
    "body": np.arange(BODY.start, BODY.stop),
    "hand": np.concatenate([np.arange(LEFT_HAND.start, LEFT_HAND.stop), np.arange(RIGHT_HAND.start, RIGHT_HAND.stop)]),
}


def project_into(cameras: list[Camera], points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pixels ``(views, frames, joints, 2)`` and visibility ``(views, frames, joints)`` of ``points (frames, joints, 3)``.

    Visible: reconstructed, in front of the camera and inside its image (when its size is known).
    """
    pixels = np.stack([camera.project(points) for camera in cameras])
    visible = np.stack([camera.in_front(points) for camera in cameras]) & np.isfinite(pixels).all(axis=-1)
    for v, camera in enumerate(cameras):
        if camera.image_size is not None:
            width, height = camera.image_size
            x, y = pixels[v, ..., 0], pixels[v, ..., 1]
            visible[v] &= (x >= 0) & (x <= width - 1) & (y >= 0) & (y <= height - 1)
    return pixels, visible


def run_stage(context: StageContext) -> tuple[dict[str, str], dict]:
    take = context.take
    joints = load_arrays(context.inputs["refine"].path("joints_3d"), ("points", "num_views"))
    points = joints["points"]
    pixels, visible = project_into(list(take.exo_cameras), points)
    uid = str(take.metadata.get("take_uid", take.name))
    files, summary = {}, {}
    for part, indices in EXPORT_PARTS.items():
        document = annotation_document(
            indices, points, joints["num_views"], list(take.exo_names), pixels, visible, take.name, uid
        )
        name = f"{part}_annotation.json"
        atomic_write_text(context.work / name, json.dumps(document, separators=(",", ":")) + "\n")
        files[part] = name
        summary[f"{part}_frames"] = len(document)
    if context.settings("export")["trc"]:
        write_trc(context.work / "joints_3d.trc", points, list(JOINT_NAMES), take.fps)
        files["trc"] = "joints_3d.trc"
    return files, summary


STAGE = StageSpec(
    name="export",
    inputs=("refine",),
    config_sections=("export",),
    code=("stages/export.py", "pipeline/formats/egoexo4d.py", "pipeline/formats/trc.py"),
    reads_take_files=False,
    writes=("body", "hand", "trc?"),
    run=run_stage,
)
