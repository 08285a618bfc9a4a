"""Compare two output folders of the same take(s): every stage file byte for byte.

``python -m tests.compare_outputs OUT_A OUT_B [--ignore-stage qa]``: for every file under
``OUT_A/<take>/<stage>/`` (and the export's sub-folders), the same path under ``OUT_B``
must hold the same bytes. Manifests are compared without what changes from run to run
by design (fingerprints, which hash the code, and the QA overlays' ``drawn_with``;
seconds), and ``run.json``, batch files and rerun recordings (a fresh recording id each
run) are skipped. Prints one line per differing file and a
count; exits 1 when anything differs. Used to show that a refactor changed no output
(docs/RESULTS.md says where it was run).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

SKIPPED = {"run.json", "batch_summary.json", "batch_report.html"}
SKIPPED_SUFFIXES = (".rrd",)  # a rerun recording holds a fresh recording id every run
# Manifest keys that hash the code (or inputs' fingerprints) or time the run.
MANIFEST_RUN_KEYS = {"fingerprint", "drawn_with", "seconds", "created", "started", "finished"}


def _without_run_keys(value):
    if isinstance(value, dict):
        return {key: _without_run_keys(item) for key, item in value.items() if key not in MANIFEST_RUN_KEYS}
    if isinstance(value, list):
        return [_without_run_keys(item) for item in value]
    return value


def _manifest(path: Path) -> dict:
    return _without_run_keys(json.loads(path.read_text(encoding="utf-8")))


def compare(first: Path, second: Path, ignore_stages: set[str]) -> tuple[list[str], int]:
    """(differences, files compared) of the stage files of ``first`` against ``second``."""
    differences, compared = [], 0
    for path in sorted(first.rglob("*")):
        if not path.is_file() or path.name in SKIPPED or path.suffix in SKIPPED_SUFFIXES or ".cache" in path.parts:
            continue
        relative = path.relative_to(first)
        if len(relative.parts) > 1 and relative.parts[1] in ignore_stages:
            continue
        other = second / relative
        compared += 1
        if not other.is_file():
            differences.append(f"{relative}: missing in {second}")
        elif path.name == "manifest.json":
            if _manifest(path) != _manifest(other):
                differences.append(f"{relative}: manifests differ (beyond fingerprint and timing)")
        elif path.read_bytes() != other.read_bytes():
            differences.append(f"{relative}: bytes differ")
    return differences, compared


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("first", type=Path)
    parser.add_argument("second", type=Path)
    parser.add_argument("--ignore-stage", action="append", default=[], help="a stage folder not to compare (repeatable)")
    args = parser.parse_args(argv)
    differences, compared = compare(args.first, args.second, set(args.ignore_stage))
    for line in differences:
        print(line)
    print(f"{compared} files compared, {len(differences)} differ")
    return 1 if differences else 0


if __name__ == "__main__":
    sys.exit(main())
