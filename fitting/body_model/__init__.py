"""Parametric body model fit to the 59 refined joints of a take (torch; optional extra ``bodymodel``).

Nothing here is imported by the rest of the pipeline unless the ``fit_body_model``
stage is enabled: importing this package imports torch.

- :mod:`.rotations`: axis-angle <-> rotation matrices (torch), batched.
- :mod:`.skinning`: points of a skinned model (joints, vertices, vertex regressors) as
  linear blend skinning of a few rig vertices, and the whole mesh.
- :mod:`.base`: :class:`BodyModel`, what a backend gives the fit, and the mapping of
  each of the 59 joints to the model (a regressed joint, a bone head or a vertex).
- :mod:`.anny_model`: Anny (Apache-2.0; its data ships in the wheel), the default.
- :mod:`.smpl_models`: SMPL-X, SMPL+H and SMPL as ``smplx`` modules (built from the
  user's model files by ``pipeline.formats.body_model``; nothing here reads a file).
- :mod:`.fit`: :func:`fit_body_model`, the fit over a take (shape shared by the take,
  pose, global rotation and translation per frame).
"""
