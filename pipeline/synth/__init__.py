"""Synthetic takes with ground truth: motion, camera rig, simulated detections, take files.

- :mod:`pipeline.synth.motion`: a person's 59 joints over time (constant bone lengths).
- :mod:`pipeline.synth.rig`: GoPro-like fisheye exo cameras, an Aria-like ego camera.
- :mod:`pipeline.synth.observations`: detector-like 2D keypoints and corruption masks.
- :mod:`pipeline.synth.take_writer`: the take folder (Ego-Exo4D layout) and ``gt/``.
- :mod:`pipeline.synth.render`: the videos.

``run_pipeline.py synth`` is the command-line entry.
"""
