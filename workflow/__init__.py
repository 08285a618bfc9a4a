"""What uses the stages: the runner (orders the stages; take and batch runs), the command
line (``cli``, ``commands/``), synthetic takes (``synth/``), benchmarks, evaluation against
ground truth, the batch report and progress display, and the import graph that gives each
stage its code version (``code_graph``).

Nothing in ``stages/`` or ``pipeline/`` imports this package (the architecture test checks).
"""
