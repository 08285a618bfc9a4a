"""The mmpose backend: models built from configs that ship inside mmpose/mmdet, random weights.

Skips (with the reason) when the optional extra is not installed (``make setup-mmpose``).
"""

from pathlib import Path

import numpy as np
import pytest

from fitting.skeleton import NUM_JOINTS
from pipeline.config import load_config

torch = pytest.importorskip("torch", reason="mmpose extra not installed (make setup-mmpose): no torch")
mmpose = pytest.importorskip("mmpose", reason="mmpose extra not installed (make setup-mmpose): no mmpose")
mmdet = pytest.importorskip("mmdet", reason="mmpose extra not installed (make setup-mmpose): no mmdet")
pytest.importorskip("mmcv.ops", reason="mmpose extra: mmcv with compiled ops (mmcv._ext) is not installed")

POSE_CONFIG = Path(mmpose.__file__).parent / ".mim/configs/wholebody_2d_keypoint/rtmpose/coco-wholebody/rtmpose-m_8xb64-270e_coco-wholebody-256x192.py"
DET_CONFIG = Path(mmdet.__file__).parent / ".mim/configs/rtmdet/rtmdet_tiny_8xb32-300e_coco.py"


def settings(**changes):
    values = load_config(overrides=["detect.backend=mmpose"]).detect
    values["mmpose"].update(pose_config=str(POSE_CONFIG), det_config=str(DET_CONFIG), min_box_score=0.0, **changes)
    return values


def test_random_weight_models_run_on_one_image():
    from stages.detect.backend import make_detector

    torch.manual_seed(0)
    detector = make_detector(settings())
    image = np.random.default_rng(0).integers(0, 255, (240, 320, 3), dtype=np.uint8)
    boxes = detector.person_boxes(image)
    assert boxes.ndim == 2 and boxes.shape[1] == 5
    keypoints = detector.detect(image, np.array([40.0, 20.0, 200.0, 230.0]))
    detector.close()
    assert keypoints.shape == (NUM_JOINTS, 3) and keypoints.dtype == np.float32
    inside = np.isfinite(keypoints[:, 0])
    assert inside.sum() > 0  # random weights still place keypoints on the box
    assert np.all((keypoints[inside, 0] >= 0) & (keypoints[inside, 0] <= 319))
    assert np.all((keypoints[inside, 1] >= 0) & (keypoints[inside, 1] <= 239))


def test_missing_model_file_is_named(tmp_path):
    from stages.detect.backend import make_detector

    with pytest.raises(FileNotFoundError, match="detect.mmpose.pose_checkpoint"):
        make_detector(settings(pose_checkpoint=str(tmp_path / "nope.pth")))


def test_a_batch_of_views_equals_one_image_at_a_time():
    """``detect_batch`` (every view of a frame in one forward pass, batches of
    ``detect.mmpose.batch_size``) gives each image's own ``detect`` result."""
    from stages.detect.backend import detect_views, make_detector

    torch.manual_seed(0)
    detector = make_detector(settings(batch_size=2))
    rng = np.random.default_rng(1)
    images = [rng.integers(0, 255, (240, 320, 3), dtype=np.uint8) for _ in range(3)]
    boxes = [np.array([40.0, 20.0, 200.0, 230.0]), np.array([10.0, 10.0, 300.0, 200.0]), np.array([100.0, 50.0, 180.0, 120.0])]
    batched = detect_views(detector, images, boxes)
    single = [detector.detect(image, box) for image, box in zip(images, boxes)]
    detector.close()
    assert len(batched) == 3
    for one, many in zip(single, batched):
        np.testing.assert_array_equal(np.isnan(one), np.isnan(many))
        np.testing.assert_allclose(many, one, atol=1e-3, equal_nan=True)


def test_device_auto_is_the_cpu_without_a_gpu():
    from stages.detect.mmpose_backend import torch_device

    assert torch_device("auto") == ("cuda:0" if torch.cuda.is_available() else "cpu")
    assert torch_device("cpu") == "cpu"
