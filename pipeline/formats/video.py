"""Streaming video I/O with PyAV: write RGB frames one at a time, read them back one at a time.

- :class:`VideoWriter`: context manager that encodes uint8 ``(H, W, 3)`` RGB frames to
  H.264 (``libx264``, or MPEG-4 Part 2 when libx264 is missing), yuv420p, at a fixed
  frame rate. The file is written to a temporary file in the destination folder and
  renamed over the destination only when the writer closes without an exception; on an
  exception the temporary file is removed and the destination is left untouched.
  MP4/MOV files are written with ``movflags=+faststart`` (the index, ``moov``, before the
  data), so a file later cut short still opens and its first frames still decode.
- :func:`iter_frames`: yields ``(frame_index, rgb)`` for ``start <= frame_index < stop``,
  decoding one frame at a time (never the whole video in memory).
- :func:`video_info`: :class:`VideoInfo` (width, height, fps, num_frames) without decoding.

Frame indices come from the presentation timestamps: ``round((pts - start_time) *
time_base * fps)``, so they are the frame's position in a constant-frame-rate video
even after a seek.

Errors: a missing file raises :class:`FileNotFoundError` naming the file; a file that
cannot be decoded raises :class:`VideoDecodeError` naming the file and the index of the
first frame that could not be produced. Frames decoded before the failure are yielded
first; nothing is dropped silently.

How PyAV 18 (FFmpeg 7) behaves on damaged files, which is why the checks below exist:

- An MP4 whose ``moov`` index is at the end (the FFmpeg default without faststart) and
  that is cut short does not open at all: ``av.open`` raises ``InvalidDataError``
  ("moov atom not found"). That is reported as a :class:`VideoDecodeError` at frame 0.
- A faststart MP4 cut inside a packet: the demuxer returns the partial last packet and
  single-threaded decoding raises ``InvalidDataError`` from ``avcodec_send_packet()``;
  with frame-threaded decoding (``thread_type="AUTO"``, used here for speed) the same
  file ends *without any error*, the frames simply stop.
- A faststart MP4 cut exactly at a packet boundary ends without any error in both modes.
- Frames held back by B-frame reordering are lost with the damaged packet, so the last
  frame yielded can be a few frames before the cut.

So end of stream is not trusted: when the container declares its frame count (MP4/MOV
sample tables do) and decoding stops before it, :class:`VideoDecodeError` is raised at
the first missing index; a gap in the frame indices raises it too. Corruption in the
middle of an H.264 stream may be concealed by FFmpeg's error concealment (frames come
out damaged but present) and is not detected. Containers without a declared frame count
(e.g. raw ``.h264``, some ``.mkv``) cannot be checked for truncation at the end.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

__all__ = [
    "VideoInfo",
    "VideoDecodeError",
    "VideoWriter",
    "LockstepDecodeError",
    "iter_frames",
    "iter_frames_lockstep",
    "video_info",
    "default_codec",
]
logger = logging.getLogger(__name__)

# x264's macroblock-tree rate control made the output of identical runs differ (seen
# with PyAV 18.1's x264, single- and multi-threaded, on some rendered frames: decoded
# pixels off by up to ~16 levels); without it the bytes are reproducible.
_X264_PARAMS = "mbtree=0"

# Containers whose muxer understands movflags=+faststart.
_FASTSTART_SUFFIXES = {".mp4", ".mov", ".m4v"}


class VideoDecodeError(RuntimeError):
    """A video could not be decoded; ``path`` and ``frame_index`` (the first frame not produced)."""

    def __init__(self, path: str | os.PathLike, frame_index: int, reason: str) -> None:
        self.path = Path(path)
        self.frame_index = int(frame_index)
        self.reason = reason
        super().__init__(f"{self.path}: cannot decode frame {self.frame_index}: {reason}")


@dataclass(frozen=True)
class VideoInfo:
    """Size in pixels, frame rate and number of frames of a video."""

    width: int
    height: int
    fps: float
    num_frames: int


def default_codec() -> str:
    """``libx264`` when this PyAV build has it, else ``mpeg4``."""
    return "libx264" if "libx264" in av.codec.codecs_available else "mpeg4"


def _check_exists(path: Path) -> None:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such video file")


def _open_input(path: Path):
    _check_exists(path)
    try:
        return av.open(str(path), mode="r")
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such video file") from None
    except (av.FFmpegError, OSError, ValueError) as error:
        raise VideoDecodeError(path, 0, f"cannot open the container ({error})") from error


def _video_stream(container, path: Path):
    if not container.streams.video:
        container.close()
        raise VideoDecodeError(path, 0, "the file has no video stream")
    return container.streams.video[0]


def _stream_fps(stream) -> Fraction:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    if not rate or rate <= 0:
        raise ValueError("unknown frame rate")
    return Fraction(rate)


def _declared_frames(stream) -> int:
    """Frame count stored in the container, 0 when it declares none."""
    return int(stream.frames or 0)


def video_info(path: str | os.PathLike) -> VideoInfo:
    """Width, height, fps and frame count of the first video stream of ``path``.

    The frame count is the container's (MP4/MOV sample table); when the container does
    not declare one, packets are counted by demuxing (no decoding).
    """
    path = Path(path)
    container = _open_input(path)
    try:
        stream = _video_stream(container, path)
        try:
            fps = _stream_fps(stream)
        except ValueError as error:
            raise VideoDecodeError(path, 0, str(error)) from None
        num_frames = _declared_frames(stream)
        if num_frames == 0:
            try:
                num_frames = sum(1 for packet in container.demux(stream) if packet.size)
            except av.FFmpegError as error:
                raise VideoDecodeError(path, 0, f"cannot count packets ({error})") from error
        context = stream.codec_context
        return VideoInfo(int(context.width), int(context.height), float(fps), int(num_frames))
    finally:
        container.close()


def iter_frames(path: str | os.PathLike, start: int = 0, stop: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(frame_index, rgb)`` for the frames ``start <= frame_index < stop`` of ``path``.

    ``rgb`` is a fresh uint8 ``(H, W, 3)`` array. Frames are decoded one at a time: the
    reader seeks to the last keyframe at or before ``start`` and decodes forward,
    skipping the frames before ``start``. ``stop=None`` reads to the end.

    Raises :class:`FileNotFoundError` for a missing file and :class:`VideoDecodeError`
    (after yielding every frame decoded before the failure) for a damaged one,
    including a file that ends before the frame count its container declares.
    """
    path = Path(path)
    start = int(start)
    if start < 0:
        raise ValueError(f"{path}: start must be >= 0, got {start}")
    if stop is not None and int(stop) < start:
        raise ValueError(f"{path}: stop ({stop}) must be >= start ({start})")
    container = _open_input(path)
    try:
        yield from _decode(container, path, start, None if stop is None else int(stop))
    finally:
        container.close()


class LockstepDecodeError(RuntimeError):
    """A video of a lockstep read could not be decoded; the message names the file, camera and frame."""


def iter_frames_lockstep(
    paths: list, names: list[str], start: int, stop: int, fail: bool = True, errors: list[dict] | None = None
) -> Iterator[tuple[int, list[np.ndarray | None]]]:
    """Yield ``(frame, images)`` for ``start <= frame < stop``: one decoded frame of every video
    (``paths``, camera ``names``) at a time, never more in memory.

    A video that ends early or cannot be decoded from frame ``k`` on raises
    :class:`LockstepDecodeError` (``fail``) or yields None for that view from ``k`` on,
    appending ``{camera, file, first_frame, frames_missing, reason}`` to ``errors``.
    A path of None is a view without a video: always None, no error.
    """
    streams = [None if path is None else iter_frames(path, start, stop) for path in paths]
    alive = [stream is not None for stream in streams]

    def lost(v: int, frame: int, reason: str) -> None:
        message = f"{paths[v]}: camera '{names[v]}': cannot decode frame {frame}: {reason}"
        if fail:
            raise LockstepDecodeError(message)
        logger.warning("%s; frames %d-%d of this view are marked missing", message, frame, stop - 1)
        if errors is not None:
            errors.append({"camera": names[v], "file": str(paths[v]), "first_frame": int(frame), "frames_missing": int(stop - frame), "reason": reason})
        alive[v] = False
        streams[v].close()

    try:
        for frame in range(start, stop):
            images: list[np.ndarray | None] = []
            for v, stream in enumerate(streams):
                image = None
                if alive[v]:
                    try:
                        index, image = next(stream)
                        if index != frame:
                            lost(v, frame, f"the decoder gave frame {index} where frame {frame} was expected")
                            image = None
                    except StopIteration:
                        lost(v, frame, "the video ends before this frame")
                    except VideoDecodeError as error:
                        lost(v, error.frame_index, error.reason)
                images.append(image)
            yield frame, images
    finally:
        for stream in streams:
            if stream is not None:
                stream.close()


def _decode(container, path: Path, start: int, stop: int | None) -> Iterator[tuple[int, np.ndarray]]:
    stream = _video_stream(container, path)
    try:
        fps = _stream_fps(stream)
    except ValueError as error:
        raise VideoDecodeError(path, start, str(error)) from None
    declared = _declared_frames(stream)
    if stop is not None and declared:
        stop = min(stop, declared)
    if stop is not None and stop <= start:
        return
    stream.thread_type = "AUTO"
    time_base = stream.time_base
    origin = stream.start_time or 0

    def index_of(frame, fallback: int) -> int:
        if frame.pts is None or time_base is None:
            return fallback
        return int(round((frame.pts - origin) * time_base * fps))

    if start > 0:
        target = origin + int((Fraction(start) / fps) / time_base)
        try:
            container.seek(target, stream=stream, backward=True, any_frame=False)
        except av.FFmpegError as error:
            raise VideoDecodeError(path, start, f"cannot seek ({error})") from error
        expected = None  # first index after a seek is whatever the keyframe gives
    else:
        expected = 0
    counter = 0  # fallback index when frames carry no timestamps
    try:
        for packet in container.demux(stream):
            for frame in packet.decode():
                index = index_of(frame, counter)
                counter = index + 1
                if expected is None and index > start:
                    raise VideoDecodeError(path, start, f"the seek landed on frame {index}, after frame {start}")
                if expected is not None and index > expected and index > start:
                    raise VideoDecodeError(path, max(expected, start), f"frame indices jump from {expected} to {index} (missing frames)")
                expected = index + 1
                if index < start:
                    continue
                if stop is not None and index >= stop:
                    return
                yield index, frame.to_ndarray(format="rgb24")
    except av.FFmpegError as error:
        next_index = start if expected is None else max(expected, start)
        raise VideoDecodeError(path, next_index, f"decoder error ({error})") from error
    next_index = start if expected is None else max(expected, start)
    end = stop if stop is not None else declared
    if end and next_index < end:
        raise VideoDecodeError(path, next_index, f"the stream ends early (decoded up to frame {next_index}, expected {end} frames)")


class VideoWriter:
    """Encode RGB frames into a video file, atomically.

    ::

        with VideoWriter(path, fps=30) as writer:
            for image in images:          # uint8 (H, W, 3) RGB, all the same size
                writer.write(image)

    ``codec``: ``libx264`` (default when available, else ``mpeg4``); ``crf`` and
    ``preset`` apply to libx264, ``bit_rate`` (bits/s, default ~0.25 bit per pixel per
    frame) to other codecs; ``threads``: encoder threads (default: the codec's choice).
    Width and height must be even (yuv420p). The size is taken from the first frame
    unless ``width``/``height`` are given.

    libx264 runs without macroblock-tree rate control (``mbtree=0``) so that the same
    frames always give the same bytes: with it, this x264 build's output varied from
    run to run on some content, whatever the thread count.

    The frames go to a hidden temporary file next to ``path``; :meth:`close` finishes
    the stream and renames it to ``path``. Leaving the ``with`` block by an exception
    (or calling :meth:`abort`) removes the temporary file and leaves ``path`` untouched.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        fps: float,
        *,
        width: int | None = None,
        height: int | None = None,
        codec: str | None = None,
        crf: int = 18,
        preset: str = "veryfast",
        bit_rate: int | None = None,
        threads: int | None = None,
    ) -> None:
        self.path = Path(path)
        if not np.isfinite(fps) or fps <= 0:
            raise ValueError(f"{self.path}: fps must be positive, got {fps}")
        self.fps = float(fps)
        self.rate = Fraction(fps).limit_denominator(1001 * 1000)
        self.codec = codec or default_codec()
        self.crf = int(crf)
        self.preset = preset
        self.bit_rate = bit_rate
        self.threads = threads
        self.width = None if width is None else int(width)
        self.height = None if height is None else int(height)
        self.frames_written = 0
        self._container = None
        self._stream = None
        self._temporary: Path | None = None
        self._closed = False
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.stem}.", suffix=f".tmp{self.path.suffix}")
        os.close(handle)
        self._temporary = Path(temporary)
        if self.width is not None and self.height is not None:
            self._open_stream(self.width, self.height)

    def _open_stream(self, width: int, height: int) -> None:
        if width <= 0 or height <= 0 or width % 2 or height % 2:
            self.abort()
            raise ValueError(f"{self.path}: width and height must be positive and even (yuv420p), got {width}x{height}")
        options = {"movflags": "+faststart"} if self.path.suffix.lower() in _FASTSTART_SUFFIXES else {}
        try:
            container = av.open(str(self._temporary), mode="w", format=_format_of(self.path), options=options)
            stream = container.add_stream(self.codec, rate=self.rate)
        except Exception:
            self.abort()
            raise
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p"
        if self.threads is not None:
            stream.codec_context.thread_count = int(self.threads)
        if self.codec == "libx264":
            stream.options = {"crf": str(self.crf), "preset": self.preset, "x264-params": _X264_PARAMS}
        else:
            stream.bit_rate = int(self.bit_rate or max(1_000_000, 0.25 * width * height * self.fps))
        self._container, self._stream = container, stream
        self._time_base = Fraction(1) / self.rate
        self.width, self.height = width, height

    def write(self, frame: np.ndarray) -> None:
        """Append one uint8 ``(H, W, 3)`` RGB frame."""
        if self._closed:
            raise ValueError(f"{self.path}: writer is closed")
        frame = np.asarray(frame)
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(f"{self.path}: frames must be uint8 (H, W, 3) RGB, got {frame.dtype} {frame.shape}")
        if self._stream is None:
            self._open_stream(frame.shape[1], frame.shape[0])
        if frame.shape[:2] != (self.height, self.width):
            raise ValueError(f"{self.path}: frame {self.frames_written} is {frame.shape[1]}x{frame.shape[0]}, expected {self.width}x{self.height}")
        video_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
        video_frame.pts = self.frames_written
        video_frame.time_base = self._time_base
        for packet in self._stream.encode(video_frame):
            self._container.mux(packet)
        self.frames_written += 1

    def close(self) -> Path:
        """Flush the encoder, close the file and move it to ``path``; returns ``path``."""
        if self._closed:
            return self.path
        try:
            if self._stream is None:
                raise ValueError(f"{self.path}: no frame was written")
            for packet in self._stream.encode(None):
                self._container.mux(packet)
            self._container.close()
            self._container = None
            with open(self._temporary, "rb+") as stream:
                os.fsync(stream.fileno())
            os.chmod(self._temporary, 0o666 & ~_umask())  # mkstemp made it 0600
            os.replace(self._temporary, self.path)
        except BaseException:
            self.abort()
            raise
        self._closed = True
        return self.path

    def abort(self) -> None:
        """Discard everything written: close the encoder and remove the temporary file."""
        self._closed = True
        if self._container is not None:
            try:
                self._container.close()
            except Exception:  # noqa: BLE001 - the file is being thrown away
                pass
            self._container = None
        if self._temporary is not None:
            self._temporary.unlink(missing_ok=True)

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type, exc, traceback) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def __del__(self) -> None:
        if not self._closed and self._temporary is not None:
            self.abort()


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _format_of(path: Path) -> str | None:
    suffix = path.suffix.lower()
    return {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".avi": "avi"}.get(suffix)
