"""Artifact store: one folder per stage under ``OUT/<take>/``, each with a manifest.

A stage writes its files into a fresh temporary folder beside its final one; the
manifest (``manifest.json``) is written last and the folder is renamed into place, so
a stage folder either holds a complete result or does not exist: a run killed at any
point loses nothing that had finished, and never leaves a half-written result behind.

The manifest records a *fingerprint*: a hash of the stage's code version, its config
section and the fingerprints of its inputs. A stage is up to date when its manifest's
fingerprint equals the one the current run computes; then it is skipped.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.atomic import atomic_write_text

MANIFEST = "manifest.json"
RUN_FILE = "run.json"  # OUT/<take>/run.json: the take folder and the settings of the last run
PROJECT_ROOT = Path(__file__).resolve().parents[1]


def fingerprint(payload: Any) -> str:
    """A stable hash (hex, 16 chars) of JSON-serialisable data."""
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def source_fingerprint(paths: tuple[str, ...]) -> str:
    """Hash of the Python sources under ``paths`` (relative to the project root): the code version."""
    digest = hashlib.sha256()
    for relative in paths:
        root = PROJECT_ROOT / relative
        files = sorted(root.rglob("*.py")) if root.is_dir() else [root]
        for path in files:
            digest.update(str(path.relative_to(PROJECT_ROOT) if path.is_relative_to(PROJECT_ROOT) else path).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def file_fingerprint(paths: list[Path]) -> str:
    """Hash of files' names, sizes and modification times (cheap: no content read).

    Folders contribute every file inside them.
    """
    entries = []
    for path in paths:
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for file in files:
            stat = file.stat()
            entries.append((str(file), stat.st_size, stat.st_mtime_ns))
    return fingerprint(entries)


@dataclass(frozen=True)
class StageRecord:
    """A finished stage: its folder and manifest."""

    folder: Path
    manifest: dict

    @property
    def fingerprint(self) -> str:
        return self.manifest["fingerprint"]

    def path(self, name: str) -> Path:
        """Path of one of the stage's output files, by its manifest name."""
        files = self.manifest["files"]
        if name not in files:
            raise KeyError(f"{self.folder}: stage output has no file {name!r} (has: {', '.join(files)})")
        return self.folder / files[name]


class ArtifactStore:
    """Stage folders of one take: ``root/<stage>/`` with ``manifest.json``."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def folder(self, stage: str) -> Path:
        return self.root / stage

    def record(self, stage: str) -> StageRecord | None:
        """The finished stage, or None when it never finished (or its manifest is unreadable)."""
        folder = self.folder(stage)
        try:
            manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        except (FileNotFoundError, json.JSONDecodeError):
            return None
        if not all((folder / name).is_file() for name in manifest.get("files", {}).values()):
            return None
        return StageRecord(folder, manifest)

    def is_current(self, stage: str, expected_fingerprint: str) -> bool:
        record = self.record(stage)
        return record is not None and record.fingerprint == expected_fingerprint

    def begin(self, stage: str) -> Path:
        """A new empty temporary folder for the stage's files."""
        self.root.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f".{stage}.", dir=self.root))
        work.chmod(0o755)  # mkdtemp makes it private; results are for everyone who can read OUT
        return work

    def commit(self, stage: str, work: Path, stage_fingerprint: str, files: dict[str, str], summary: dict) -> StageRecord:
        """Write the manifest into ``work`` and move it into place as the stage's folder."""
        manifest = {"stage": stage, "fingerprint": stage_fingerprint, "files": files, "summary": summary}
        missing = [name for name in files.values() if not (work / name).is_file()]
        if missing:
            raise FileNotFoundError(f"{work}: stage '{stage}' did not write {', '.join(missing)}")
        atomic_write_text(work / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        final = self.folder(stage)
        if final.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{stage}.old.", dir=self.root))
            os.replace(final, old / stage)
            os.replace(work, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(work, final)
        return StageRecord(final, manifest)

    def abandon(self, work: Path) -> None:
        """Remove a temporary folder of a stage that failed."""
        shutil.rmtree(work, ignore_errors=True)

    def cache(self, stage: str, stage_fingerprint: str) -> Path:
        """A folder for the partial results of one stage and fingerprint, kept across killed
        runs (``root/.cache/<stage>-<fingerprint>/``, created by the stage when it writes
        there) until the stage is committed."""
        return self.root / ".cache" / f"{stage}-{stage_fingerprint}"

    def clear_cache(self, stage: str) -> None:
        """Every partial result of ``stage`` (any fingerprint); the cache folder goes when empty."""
        cache = self.root / ".cache"
        for folder in cache.glob(f"{stage}-*"):
            shutil.rmtree(folder, ignore_errors=True)
        if cache.is_dir() and not any(cache.iterdir()):
            cache.rmdir()

    def remove_leftovers(self) -> None:
        """Temporary folders of runs that were killed."""
        if self.root.is_dir():
            for path in self.root.glob(".*.*"):
                if path.is_dir():
                    shutil.rmtree(path, ignore_errors=True)
