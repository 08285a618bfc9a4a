"""The take as a 3D recording (rerun ``.rrd``; needs the ``qa3d`` extra, rerun-sdk).

Entities (timeline ``frame``): ``world/exo/<cam>`` (pose and pinhole frustum, static),
``world/ego`` (the ego camera's pose and frustum per frame, cleared at frames without a
pose), ``world/ego_path`` (its trajectory), ``world/skeleton`` (59 joints per frame
coloured by quality: green fine, orange gap-filled, red in a flagged part; edges from
the annotation context),
``world/scene`` (the take's semidense points, when given), ``world/body_model`` (the
fitted body's meshes at the frames the body model stage wrote), ``flag_log`` (a text
log entry at each flagged stretch's first frame: part, frames, the culprit camera, each
reason's value and threshold; :func:`fitting.quality.stretch_text`); per exo view
``views/<cam>/image`` (the overlay stills, as the videos draw them; the ego view's too) and
``views/<cam>/detections`` (the 2D detections, cyan as in the videos, on the stills'
pixels); time series ``errors/<cam>/<part>`` (the view's median inlier residual, px)
and ``flags/<part>`` (1 where the part is flagged, red as the videos' flag boxes). A
blueprint opens the 3D view beside the views, the series and the flag log. Written columnar, 500
frames per send: no Python loop over frames (one log per mesh file).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fitting import skeleton

_GOOD = (40, 200, 80)
_FILLED = (255, 150, 0)
_FLAGGED = (230, 40, 40)
_FRAMES_PER_SEND = 500  # skeleton frames per columnar send (memory per send, not per take)
_DETECTED = (0, 230, 255)  # as the overlays draw the 2D detections
_PART_SERIES = {"body": (240, 240, 240), "left_hand": (255, 80, 255), "right_hand": (255, 160, 40)}  # as the ego overlay's parts


@dataclass(frozen=True)
class RecordingViews:
    """The recording's per-view content: ``names (views,)`` the exo views; ``stills``: view
    (exo or ego) -> ``[(frame,
    jpeg bytes, scale from full-resolution pixels)]``; ``keypoints (views, frames, 59, 3)``
    px; ``view_error_px (views, frames, parts)``; ``part_flagged (frames, parts)`` bool."""

    names: list[str]
    stills: dict[str, list[tuple[int, bytes, float]]] = field(default_factory=dict)
    keypoints: np.ndarray | None = None
    view_error_px: np.ndarray | None = None
    part_flagged: np.ndarray | None = None

    @property
    def all_names(self) -> list[str]:
        """The exo views, then the other views with stills (the ego view)."""
        return list(self.names) + sorted(set(self.stills) - set(self.names))


def rerun_available() -> bool:
    try:
        import rerun  # noqa: F401
    except ImportError:
        return False
    return True


def joint_colours(present: np.ndarray, filled: np.ndarray, part_flagged: np.ndarray) -> np.ndarray:
    """uint8 ``(frames, 59, 3)``: red where the joint's part is flagged, orange gap-filled, else green."""
    colours = np.empty(present.shape + (3,), dtype=np.uint8)
    colours[:] = _GOOD
    flagged = np.zeros(present.shape, dtype=bool)
    for p, joints in enumerate(skeleton.PARTS.values()):
        flagged[:, joints] = part_flagged[:, p, None]
    colours[filled] = _FILLED
    colours[flagged] = _FLAGGED
    return colours


def write_recording(
    path: Path,
    take_name: str,
    points: np.ndarray,
    colours: np.ndarray,
    exo_cameras: list,
    ego_R: np.ndarray | None,
    ego_t: np.ndarray | None,
    ego_model=None,
    ego_size: tuple[int, int] | None = None,
    scene: np.ndarray | None = None,
    meshes: list[tuple[int, Path]] = (),
    flag_log: list[tuple[int, str]] = (),
    views: RecordingViews | None = None,
) -> Path:
    """Write the recording: ``points (frames, 59, 3)`` metres, ``colours (frames, 59, 3)``,
    static exo cameras, the ego camera's world-to-camera ``ego_R (frames, 3, 3)`` /
    ``ego_t (frames, 3)`` (NaN without a pose), scene points ``(N, 3)``, body model meshes
    ``(frame, .glb / .ply file)`` (``world/body_model``, at their frames), ``flag_log``
    ``(frame, text)`` entries (``flag_log``), ``views``: stills, 2D detections and time
    series per view (:class:`RecordingViews`)."""
    import rerun as rr

    path = Path(path)
    temporary = path.with_name(f".{path.name}.tmp")
    # A fresh recording id each time (the viewer merges recordings of one id: two runs or
    # two takes of one name opened together would mix); the take is the recording's name.
    recording = rr.RecordingStream("egoexo_pose_gt", recording_id=uuid.uuid4(), send_properties=False)
    rr.set_log_time_enabled(False, recording=recording)  # only the frame timeline
    recording.save(str(temporary), default_blueprint=_blueprint(views.all_names if views is not None else []))
    recording.send_recording_name(take_name)
    recording.log("world", rr.ViewCoordinates.RIGHT_HAND_Z_UP, static=True)
    recording.log(
        "world/skeleton",
        rr.AnnotationContext(
            [
                rr.ClassDescription(
                    info=rr.AnnotationInfo(id=0, label="wearer"),
                    keypoint_annotations=[rr.AnnotationInfo(id=j, label=name) for j, name in enumerate(skeleton.JOINT_NAMES)],
                    keypoint_connections=list(skeleton.DRAW_EDGES),
                )
            ]
        ),
        static=True,
    )
    for camera in exo_cameras:
        entity = f"world/exo/{camera.name}"
        recording.log(entity, rr.Transform3D(translation=camera.center, mat3x3=camera.R.T), static=True)
        if camera.image_size is not None:
            recording.log(
                entity,
                rr.Pinhole(
                    focal_length=[camera.model.fx, camera.model.fy],
                    principal_point=[camera.model.cx, camera.model.cy],
                    width=camera.image_size[0],
                    height=camera.image_size[1],
                ),
                static=True,
            )
    frames = np.arange(points.shape[0])
    for first in range(0, len(frames), _FRAMES_PER_SEND):  # columnar, a block of frames at a time: bounded temporaries
        block = slice(first, first + _FRAMES_PER_SEND)
        present = np.isfinite(points[block]).all(axis=-1)
        counts = present.sum(axis=1)
        recording.send_columns(
            "world/skeleton",
            indexes=[rr.TimeColumn("frame", sequence=frames[block])],
            columns=rr.Points3D.columns(
                positions=points[block][present].astype(np.float32),
                colors=colours[block][present],
                class_ids=np.zeros(int(counts.sum()), dtype=np.uint16),
                keypoint_ids=np.nonzero(present)[1].astype(np.uint16),
                radii=np.full(int(counts.sum()), 0.012, dtype=np.float32),
            ).partition(counts),
        )
    if ego_R is not None:
        posed = np.isfinite(ego_R).all(axis=(1, 2)) & np.isfinite(ego_t).all(axis=1)
        centres = -np.einsum("fji,fj->fi", ego_R[posed], ego_t[posed])
        at_posed = [rr.TimeColumn("frame", sequence=frames[posed])]
        recording.send_columns("world/ego", indexes=at_posed, columns=rr.Transform3D.columns(translation=centres, mat3x3=np.swapaxes(ego_R[posed], 1, 2)))
        if ego_model is not None and ego_size is not None:  # the frustum, at every posed frame (a clear removes it)
            matrix = np.array([[ego_model.fx, 0.0, ego_model.cx], [0.0, ego_model.fy, ego_model.cy], [0.0, 0.0, 1.0]])
            count = int(posed.sum())
            recording.send_columns(
                "world/ego",
                indexes=at_posed,
                columns=rr.Pinhole.columns(
                    image_from_camera=np.repeat(matrix[None], count, axis=0), resolution=np.tile(np.asarray(ego_size, float), (count, 1))
                ),
            )
        if not posed.all():  # frames without a pose show no ego camera, not the last pose
            recording.send_columns(
                "world/ego",
                indexes=[rr.TimeColumn("frame", sequence=frames[~posed])],
                columns=rr.Clear.columns(is_recursive=np.ones(int((~posed).sum()), bool)),
            )
        if len(centres) > 1:
            recording.log("world/ego_path", rr.LineStrips3D([centres]), static=True)
    if meshes:
        import trimesh

        for frame, mesh_path in meshes:  # the frames the body model stage wrote meshes for
            mesh = trimesh.load(mesh_path, force="mesh", process=False)
            recording.set_time("frame", sequence=frame)
            recording.log(
                "world/body_model",
                rr.Mesh3D(
                    vertex_positions=np.asarray(mesh.vertices, np.float32),
                    triangle_indices=np.asarray(mesh.faces, np.uint32),
                    albedo_factor=(200, 170, 150, 160),
                ),
            )
        recording.reset_time()
    if flag_log:
        at, texts = zip(*sorted(flag_log))
        recording.send_columns(
            "flag_log", indexes=[rr.TimeColumn("frame", sequence=np.asarray(at))], columns=rr.TextLog.columns(text=list(texts), level=["WARN"] * len(texts))
        )
    if views is not None:
        _send_views(recording, views)
    if scene is not None and len(scene):
        recording.log("world/scene", rr.Points3D(scene.astype(np.float32), radii=0.005, colors=(160, 160, 160)), static=True)
    recording.flush()
    del recording
    temporary.replace(path)
    return path


def _blueprint(names: list[str]):
    """The 3D view beside the exo views' stills, the error and flag series and the flag log."""
    import rerun.blueprint as rrb

    side = [rrb.Grid(*[rrb.Spatial2DView(origin=f"views/{name}", name=name) for name in names])] if names else []
    return rrb.Blueprint(
        rrb.Horizontal(
            rrb.Spatial3DView(origin="world", name="3D"),
            rrb.Vertical(
                *side,
                rrb.TimeSeriesView(origin="errors", name="median residual per view and part (px)"),
                rrb.TimeSeriesView(origin="flags", name="flagged parts"),
                rrb.TextLogView(origin="flag_log", name="flagged stretches"),
            ),
            column_shares=[3, 2],
        ),
        collapse_panels=False,
    )


def _send_views(recording, views: RecordingViews) -> None:
    """Stills, 2D detections (at the stills' frames, on their pixels) and time series, columnar."""
    import rerun as rr

    from fitting.quality import PART_NAMES

    for v, name in enumerate(views.all_names):
        stills = views.stills.get(name, [])
        if stills:
            frames = np.array([frame for frame, _, _ in stills])
            at = [rr.TimeColumn("frame", sequence=frames)]
            recording.send_columns(
                f"views/{name}/image",
                indexes=at,
                columns=rr.EncodedImage.columns(blob=[jpeg for _, jpeg, _ in stills], media_type=["image/jpeg"] * len(stills)),
            )
            if views.keypoints is not None and v < len(views.names):
                scales = np.array([scale for _, _, scale in stills])
                points = views.keypoints[v, frames, :, :2] * scales[:, None, None]  # (stills, 59, 2) on the stills' pixels
                seen = np.isfinite(points).all(axis=-1)
                recording.send_columns(
                    f"views/{name}/detections", indexes=at,
                    columns=rr.Points2D.columns(positions=points[seen].astype(np.float32), colors=np.tile(np.array(_DETECTED, np.uint8), (int(seen.sum()), 1)),
                                                keypoint_ids=np.nonzero(seen)[1].astype(np.uint16)).partition(seen.sum(axis=1)),
                )  # fmt: skip
        if views.view_error_px is not None and v < len(views.names):
            frames = np.arange(views.view_error_px.shape[1])
            for p, part in enumerate(PART_NAMES):
                entity = f"errors/{name}/{part}"
                recording.log(entity, rr.SeriesLines(colors=[_PART_SERIES[part]], names=[f"{name} {part}"]), static=True)
                values = views.view_error_px[v, :, p]
                keep = np.isfinite(values)
                recording.send_columns(
                    entity, indexes=[rr.TimeColumn("frame", sequence=frames[keep])], columns=rr.Scalars.columns(scalars=values[keep].astype(np.float64))
                )
    if views.part_flagged is not None:
        frames = np.arange(views.part_flagged.shape[0])
        for p, part in enumerate(PART_NAMES):
            entity = f"flags/{part}"
            recording.log(entity, rr.SeriesLines(colors=[(230, 40, 40)], names=[f"{part} flagged"]), static=True)
            recording.send_columns(
                entity, indexes=[rr.TimeColumn("frame", sequence=frames)], columns=rr.Scalars.columns(scalars=views.part_flagged[:, p].astype(np.float64))
            )
