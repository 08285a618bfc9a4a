"""Every file format the pipeline reads or writes, one module per family.

- :mod:`pipeline.formats.take_folder`: take folders (Ego-Exo4D layout, anipose /
  Pose2Sim rig folders) -> :class:`~pipeline.formats.take_folder.Take`.
- :mod:`pipeline.formats.calibration`: anipose / Pose2Sim TOML, Ego-Exo4D
  ``gopro_calibs.csv`` and camera_pose JSON, COLMAP models.
- :mod:`pipeline.formats.aria`: raw Project Aria machine-perception outputs
  (closed-loop trajectory, online / device calibration, frame timestamps).
- :mod:`pipeline.formats.openpose`: OpenPose JSON keypoint files.
- :mod:`pipeline.formats.egoexo4d`: Ego-Exo4D annotation files (2D reader, body and
  hand writers, the ego-pose benchmark layout, the released camera_pose layout).
- :mod:`pipeline.formats.trc`: OpenSim TRC marker files.
- :mod:`pipeline.formats.video`: streaming video decode and encode (PyAV).
- :mod:`pipeline.formats.arrays`: the stages' ``.npz`` arrays.
- :mod:`pipeline.formats.body_model`: the body model fit's parameters, fitted joints
  and meshes (``.glb`` / ``.ply`` via trimesh).

Writers are atomic (:mod:`pipeline.atomic`); ``.npz`` files never hold pickles. A
reader's error names the file, and where it applies the camera, frame and field.
"""
