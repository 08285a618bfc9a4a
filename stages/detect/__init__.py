"""Stage ``detect``: the camera wearer's 2D body (COCO-17) and hands (21 + 21) in every exo view.

- :mod:`stages.detect.backend`: the detector interface and the factory (``mediapipe``,
  ``mmpose``).
- :mod:`detection.track`: the loop over frames in lockstep across views: regions of
  interest from a 3D prior (ego camera, previous 3D body, previous 2D box, seed).
- :mod:`detection.prior`, :mod:`detection.crops`, :mod:`detection.hands`:
  ROI boxes, square and turned crops and the way back, forearms and palm-detection crops.
- :mod:`detection.hand_search`, :mod:`detection.hand_regions`: each hand searched
  per view in regions from every prior (previous 3D hand, forearm, the other views' 3D
  hand, retries); :mod:`detection.hand_quality`: each view's hand checked against
  the other views and the take's bone lengths.
- :mod:`detection.people`: the camera wearer among several people of precomputed
  files, with the same priors and a multi-view check.
- :mod:`detection.keypoint_maps`: BlazePose-33 and COCO-WholeBody-133 -> 59 joints.

Inputs are in memory (frame iterators, cameras, arrays, the ``detect`` settings); the
file side: :mod:`stages.detect.stage` (the stage), :mod:`stages.detect.tasks` (videos, tasks,
Ray) and :mod:`stages.detect.precomputed` (2D keypoint files).
"""
