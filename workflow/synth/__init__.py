"""Synthetic takes with ground truth: motion, camera rig, simulated detections, take files.

- :mod:`workflow.synth.motion`: a person's 59 joints over time (constant bone lengths).
- :mod:`workflow.synth.rig`: GoPro-like fisheye exo cameras, an Aria-like ego camera.
- :mod:`workflow.synth.observations`: detector-like 2D keypoints and corruption masks.
- :mod:`workflow.synth.take_writer`: the take folder (Ego-Exo4D layout) and ``gt/``.
- :mod:`workflow.synth.render`: the videos.

``run_pipeline.py synth`` is the command-line entry.
"""
