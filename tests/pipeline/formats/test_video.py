"""Streaming video I/O (pipeline/video.py): write, read back, seek, damaged files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline.formats.video import VideoDecodeError, VideoInfo, VideoWriter, default_codec, iter_frames, video_info

WIDTH, HEIGHT, FPS, FRAMES = 160, 96, 25.0, 40
BLOCK = 32  # 5 x 3 blocks of 32 px


def _frame(index: int) -> np.ndarray:
    """Frame ``index`` as big blocks: block k is bright when bit k of the index is set."""
    image = np.full((HEIGHT, WIDTH, 3), 40, dtype=np.uint8)
    for bit in range(15):
        row, column = divmod(bit, WIDTH // BLOCK)
        if (index >> bit) & 1:
            image[row * BLOCK : (row + 1) * BLOCK, column * BLOCK : (column + 1) * BLOCK] = (230, 200, 60)
    image[:, :4] = (index * 6 % 256, 0, 255 - index * 6 % 256)  # a colour ramp strip
    return image


def _decode_index(image: np.ndarray) -> int:
    """Read the index back from the block centres (robust to compression)."""
    index = 0
    for bit in range(15):
        row, column = divmod(bit, WIDTH // BLOCK)
        centre = image[row * BLOCK + BLOCK // 2 - 4 : row * BLOCK + BLOCK // 2 + 4,
                       column * BLOCK + BLOCK // 2 - 4 : column * BLOCK + BLOCK // 2 + 4]  # fmt: skip
        if centre.mean() > 120:
            index |= 1 << bit
    return index


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("video") / "clip.mp4"
    with VideoWriter(path, FPS) as writer:
        for index in range(FRAMES):
            writer.write(_frame(index))
    return path


def test_info_and_full_read(video):
    assert video_info(video) == VideoInfo(WIDTH, HEIGHT, FPS, FRAMES)
    indices = []
    for index, image in iter_frames(video):
        assert image.shape == (HEIGHT, WIDTH, 3) and image.dtype == np.uint8
        assert _decode_index(image) == index
        assert np.abs(image.astype(int) - _frame(index)).mean() < 6
        indices.append(index)
    assert indices == list(range(FRAMES))


@pytest.mark.parametrize("start, stop", [(0, 5), (13, 21), (37, None), (30, 100), (7, 7)])
def test_sub_range(video, start, stop):
    got = [(index, _decode_index(image)) for index, image in iter_frames(video, start, stop)]
    expected = list(range(start, min(FRAMES, stop if stop is not None else FRAMES)))
    assert [index for index, _ in got] == expected
    assert [content for _, content in got] == expected


def test_no_temporary_left_and_no_partial_file_on_error(tmp_path):
    path = tmp_path / "broken.mp4"
    with pytest.raises(RuntimeError, match="boom"):
        with VideoWriter(path, FPS) as writer:
            writer.write(_frame(0))
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="even"):
        VideoWriter(tmp_path / "odd.mp4", FPS).write(np.zeros((11, 16, 3), np.uint8))
    assert list(tmp_path.iterdir()) == []


def test_writer_rejects_wrong_frames(tmp_path):
    with pytest.raises(ValueError, match="expected 16x16"):
        with VideoWriter(tmp_path / "a.mp4", FPS) as writer:
            writer.write(np.zeros((16, 16, 3), np.uint8))
            writer.write(np.zeros((16, 32, 3), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        with VideoWriter(tmp_path / "b.mp4", FPS) as writer:
            writer.write(np.zeros((16, 16, 3), np.float32))
    assert list(tmp_path.iterdir()) == []


def test_missing_file(tmp_path):
    missing = tmp_path / "nope.mp4"
    with pytest.raises(FileNotFoundError, match="nope.mp4"):
        next(iter_frames(missing))
    with pytest.raises(FileNotFoundError, match="nope.mp4"):
        video_info(missing)


def _packet_offsets(path: Path) -> list[tuple[int, int]]:
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return [(packet.pos, packet.size) for packet in container.demux(stream) if packet.size]


@pytest.mark.parametrize("where", ["inside_packet", "packet_boundary"])
def test_truncated_file(video, tmp_path, where):
    data = video.read_bytes()
    packets = _packet_offsets(video)
    position, size = packets[FRAMES // 2]
    cut = position + size // 2 if where == "inside_packet" else position
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(data[:cut])
    seen = []
    with pytest.raises(VideoDecodeError, match="truncated.mp4") as caught:
        for index, image in iter_frames(truncated):
            seen.append(index)
            assert _decode_index(image) == index
    # Every frame before the failure was yielded, in order; the error names the next one.
    assert seen == list(range(len(seen)))
    assert FRAMES // 2 - 8 <= len(seen) <= FRAMES // 2
    assert caught.value.frame_index == len(seen)
    assert f"frame {len(seen)}" in str(caught.value)
    # A range that ends before the damage reads fine; one that starts after it fails at its start.
    assert [index for index, _ in iter_frames(truncated, 2, 6)] == [2, 3, 4, 5]
    with pytest.raises(VideoDecodeError) as caught:
        list(iter_frames(truncated, FRAMES - 3))
    assert caught.value.frame_index == FRAMES - 3


def test_truncated_without_faststart_does_not_open(tmp_path):
    """An MP4 with its index (moov) at the end, cut short, does not open (FFmpeg's default layout)."""
    import av

    path = tmp_path / "plain.mp4"
    with av.open(str(path), "w") as container:  # no faststart: moov written last
        stream = container.add_stream("mpeg4", rate=int(FPS))
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        for index in range(10):
            frame = av.VideoFrame.from_ndarray(_frame(index), format="rgb24")
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    assert [index for index, _ in iter_frames(path)] == list(range(10))
    broken = tmp_path / "headless.mp4"
    data = path.read_bytes()
    broken.write_bytes(data[: data.index(b"moov") - 4])  # everything but the index
    for read in (lambda: list(iter_frames(broken)), lambda: video_info(broken)):
        with pytest.raises(VideoDecodeError, match="headless.mp4") as caught:
            read()
        assert caught.value.frame_index == 0


def test_cut_inside_index(video, tmp_path):
    """A faststart file cut inside its moov box: no frame decodes, the error says frame 0."""
    position, _ = _packet_offsets(video)[0]
    broken = tmp_path / "cut.mp4"
    for cut in (position // 4, position - 10):
        broken.write_bytes(video.read_bytes()[:cut])
        with pytest.raises(VideoDecodeError, match="cut.mp4") as caught:
            list(iter_frames(broken))
        assert caught.value.frame_index == 0


def test_deterministic_encoding(tmp_path):
    """Same frames in, same bytes out (libx264 is deterministic unless told otherwise)."""
    outputs = []
    for name in ("a.mp4", "b.mp4"):
        with VideoWriter(tmp_path / name, FPS) as writer:
            for index in range(6):
                writer.write(_frame(index))
        outputs.append((tmp_path / name).read_bytes())
    if default_codec() == "libx264":
        assert outputs[0] == outputs[1]
