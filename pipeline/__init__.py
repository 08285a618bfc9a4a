"""What the stages use: the settings schema and loader (``config``), stage folders,
manifests and fingerprints (``artifacts``), atomic writes (``atomic``), Ray start-up
(``ray_support``), the one executor rule (``executor``) and every reader and writer of
files (``formats/``).

Nothing here imports a stage or :mod:`workflow` (the architecture test checks).
"""
