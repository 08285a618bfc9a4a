"""Stage ``qa``: flags, metrics, overlay videos, the take report, a 3D recording.

- :mod:`stages.qa.stage`: the stage (inputs, settings, outputs; see its docstring).
- :mod:`stages.qa.overlay`: overlay videos and report thumbnails, streamed.
- :mod:`stages.qa.report`: the self-contained HTML report (plotly, embedded).
- :mod:`stages.qa.recording`: the rerun ``.rrd`` recording (extra ``qa3d``).

The flags and metrics themselves are pure code: :mod:`fitting.quality`.
"""
