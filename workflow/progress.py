"""One progress display per batch: takes done, the current take and stage, frames/s, ETA.

On a terminal it is one line redrawn in place (on stderr); elsewhere (a cluster job's
log) plain log lines, at most one per ``interval`` seconds and at every stage change.
"""

from __future__ import annotations

import logging
import sys
import time

logger = logging.getLogger("progress")


class BatchProgress:
    """Progress of a batch of ``takes`` takes (one after another, or several at a time on
    Ray, where only the takes' completions reach the driver). The ETA is the batch's
    elapsed time per finished take times the takes left."""

    def __init__(self, takes: int, stream=None, interval: float = 10.0) -> None:
        self.takes, self.done, self.failed = takes, 0, 0
        self.stream = stream if stream is not None else sys.stderr
        self.terminal = bool(getattr(self.stream, "isatty", lambda: False)())
        self.interval = interval
        self.started = time.perf_counter()
        self.take = self.stage = ""
        self.frames = 0
        self.stage_started = self.started
        self.last_line = 0.0

    def start_take(self, name: str) -> None:
        self.take = name
        self.show(force=True)

    def start_stage(self, stage: str) -> None:
        self.stage, self.frames, self.stage_started = stage, 0, time.perf_counter()
        self.show(force=True)

    def frames_done(self, frames: int) -> None:
        self.frames = frames
        self.show()

    def finish_take(self, ok: bool) -> None:
        self.done += 1
        self.failed += not ok
        self.take = self.stage = ""
        self.frames = 0
        self.show(force=True)
        if self.terminal and self.done == self.takes:
            self.stream.write("\n")
            self.stream.flush()

    def line(self) -> str:
        now = time.perf_counter()
        parts = [f"takes {self.done}/{self.takes}" + (f" ({self.failed} failed)" if self.failed else "")]
        if self.take:
            parts.append(f"{self.take}: {self.stage or 'starting'}")
        if self.frames:
            parts.append(f"{self.frames / max(now - self.stage_started, 1e-9):.1f} frames/s")
        if 0 < self.done < self.takes:
            parts.append(f"ETA {(now - self.started) / self.done * (self.takes - self.done) / 60:.1f} min")
        parts.append(f"elapsed {(now - self.started) / 60:.1f} min")
        return " | ".join(parts)

    def show(self, force: bool = False) -> None:
        now = time.perf_counter()
        if self.terminal:
            if force or now - self.last_line >= 0.5:
                self.stream.write("\r\033[K" + self.line())
                self.stream.flush()
                self.last_line = now
        elif force or now - self.last_line >= self.interval:
            logger.info("%s", self.line())
            self.last_line = now
