"""The ``mmpose`` detector: mmdet person boxes + an mmpose top-down COCO-WholeBody model.

Optional extra (``make setup-mmpose``, docs/DEPENDENCIES.md). Its settings are the
``detect.mmpose`` sub-section. Config and checkpoint files are given by path there;
nothing is downloaded: a missing file is refused with its name. ``pose_checkpoint:
null`` builds the model with random weights (tests only). Without ``det_config`` no
person detector is used and the region of interest itself is the person box.

- ``person_boxes(image)``: mmdet's boxes of label 0 (person) with score >=
  ``detect.mmpose.min_box_score``.
- ``detect(image, roi)``: the person box that overlaps the ROI most (IoU), or the ROI
  when no box overlaps it; the whole-body model's 133 keypoints on that box -> body 17
  + left hand 21 + right hand 21 (:func:`detection.keypoint_maps.wholebody_to_joints`),
  with the model's keypoint scores as confidences. Keypoints outside the image are
  missing.
- ``detect_batch(images, rois)``: the same for every view of a frame at once: the
  person detector's images and the pose model's boxes each go through the model as
  batches of at most ``detect.mmpose.batch_size`` (one forward pass per batch: what a GPU
  wants). ``detect`` is a batch of one.
- ``device``: ``auto`` is ``cuda:0`` where torch sees a GPU, else ``cpu``
  (:func:`torch_device`).

OpenMMLab models take BGR images; frames here are RGB and are converted.

``mmpose.apis`` imports torchvision only for ``transforms.ToPILImage`` in its
visualiser, and PyPI's torchvision does not load beside the CPU torch build. When
torchvision cannot be imported, a stand-in ``torchvision.transforms`` module whose
``ToPILImage`` raises is registered for this process (inference never calls it).
"""

from __future__ import annotations

import logging
import sys
import types
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from detection.crops import box_iou
from detection.keypoint_maps import NUM_WHOLEBODY, empty_keypoints, wholebody_to_joints
from stages.detect.backend import ModelResources

if TYPE_CHECKING:
    from pipeline.config import DetectConfig

if TYPE_CHECKING:
    from pipeline.config import DetectMMPoseConfig

logger = logging.getLogger(__name__)

INSTALL_NOTE = "the mmpose extra is not installed (make setup-mmpose; see docs/DEPENDENCIES.md)"


def _existing(settings: DetectMMPoseConfig, key: str, required: bool) -> str | None:
    """The file the ``detect.mmpose`` setting ``key`` names, checked."""
    value = getattr(settings, key)
    if not value:
        if required:
            raise ValueError(f"detect.mmpose.{key} must name a file for the mmpose backend")
        return None
    if not Path(value).is_file():
        raise FileNotFoundError(f"{value}: detect.mmpose.{key}: no such file (model files are given by path, never downloaded)")
    return str(value)


def resources(settings: DetectConfig) -> ModelResources:
    """One model instance: a GPU (and one CPU to feed it) on a CUDA device, else
    ``detect.cpus_per_model`` CPUs."""
    if torch_device(settings.mmpose.device).startswith("cuda"):
        return ModelResources(1, 1)
    return ModelResources(int(settings.cpus_per_model))


def _torchvision_stand_in() -> None:
    """Register a stand-in ``torchvision.transforms`` when torchvision cannot be imported."""
    try:
        import torchvision  # noqa: F401
    except Exception as error:  # noqa: BLE001 - a broken install raises more than ImportError
        reason = str(error)  # `error` is unbound once the except clause ends
        for name in [name for name in sys.modules if name == "torchvision" or name.startswith("torchvision.")]:
            del sys.modules[name]

        class ToPILImage:  # the only name mmpose imports (visualisation only)
            def __init__(self, *args, **kwargs) -> None:
                raise RuntimeError(f"torchvision is not available ({reason}); mmpose visualisation is disabled")

        package = types.ModuleType("torchvision")
        transforms = types.ModuleType("torchvision.transforms")
        transforms.ToPILImage = ToPILImage
        package.transforms = transforms
        sys.modules["torchvision"], sys.modules["torchvision.transforms"] = package, transforms
        logger.info("torchvision not importable (%s): mmpose runs without its visualiser", reason)


def torch_device(setting: str) -> str:
    """``detect.mmpose.device`` resolved: ``auto`` is ``cuda:0`` when torch sees a GPU, else ``cpu``."""
    if setting != "auto":
        return setting
    import torch

    return "cuda:0" if torch.cuda.is_available() else "cpu"


class MMPoseDetector:
    name = "mmpose"

    def __init__(self, settings: DetectConfig) -> None:
        try:
            import mmpose  # noqa: F401

            _torchvision_stand_in()
            import torch
            from mmengine.dataset import Compose, pseudo_collate
            from mmengine.registry import init_default_scope
            from mmpose.apis import init_model
        except ImportError as error:
            raise ImportError(f"detect backend 'mmpose': {INSTALL_NOTE}: {error}") from error
        self.settings = settings
        options = self.options = settings.mmpose
        self.device = torch_device(options.device)
        self._torch, self._collate = torch, pseudo_collate
        pose_config = _existing(options, "pose_config", True)
        pose_checkpoint = _existing(options, "pose_checkpoint", False)
        det_config = _existing(options, "det_config", False)
        det_checkpoint = _existing(options, "det_checkpoint", False)
        self.pose_model = init_model(pose_config, pose_checkpoint, device=self.device)
        count = int(self.pose_model.dataset_meta.get("num_keypoints", 0))
        if count != NUM_WHOLEBODY:
            raise ValueError(f"{pose_config}: detect.mmpose.pose_config must be a COCO-WholeBody model ({NUM_WHOLEBODY} keypoints), it has {count}")
        init_default_scope(self.pose_model.cfg.get("default_scope", "mmpose"))
        self._pose_pipeline = Compose(self.pose_model.cfg.test_dataloader.dataset.pipeline)
        self.det_model = None
        if det_config is not None:
            try:
                from mmdet.apis import init_detector
                from mmdet.utils import get_test_pipeline_cfg
            except ImportError as error:
                raise ImportError(f"detect backend 'mmpose': mmdet: {INSTALL_NOTE}: {error}") from error
            self.det_model = init_detector(det_config, det_checkpoint, device=self.device)
            pipeline = get_test_pipeline_cfg(self.det_model.cfg.copy())
            pipeline[0].type = "mmdet.LoadImageFromNDArray"  # frames are arrays, not files
            self._det_pipeline = Compose(pipeline)

    def _batches(self, items: list) -> list[list]:
        size = int(self.options.batch_size)
        return [items[start : start + size] for start in range(0, len(items), size)]

    def _person_boxes_batch(self, images: list[np.ndarray]) -> list[np.ndarray]:
        """mmdet's person boxes ``(N, 5)`` of each image, in batches."""
        if self.det_model is None:
            return [np.zeros((0, 5)) for _ in images]
        found = []
        for batch in self._batches(images):
            samples = [self._det_pipeline(dict(img=np.ascontiguousarray(image[..., ::-1]), img_id=0)) for image in batch]
            data = {"inputs": [sample["inputs"] for sample in samples], "data_samples": [sample["data_samples"] for sample in samples]}
            with self._torch.no_grad():
                results = self.det_model.test_step(data)
            for result in results:
                instances = result.pred_instances
                boxes = instances.bboxes.detach().cpu().numpy().astype(np.float64)
                scores = instances.scores.detach().cpu().numpy().astype(np.float64)
                labels = instances.labels.detach().cpu().numpy()
                keep = (labels == 0) & (scores >= self.options.min_box_score)
                found.append(np.column_stack([boxes[keep], scores[keep]]).reshape(-1, 5))
        return found

    def person_boxes(self, image: np.ndarray) -> np.ndarray:
        return self._person_boxes_batch([image])[0]

    def detect(self, image: np.ndarray, box: np.ndarray) -> np.ndarray:
        return self.detect_batch([image], [box])[0]

    def detect_batch(self, images: list[np.ndarray], rois: list[np.ndarray]) -> list[np.ndarray]:
        """``(59, 3)`` keypoints of the person at each ROI, the models run in batches."""
        persons = []
        for roi, boxes in zip(rois, self._person_boxes_batch(images)):
            person = np.asarray(roi, dtype=np.float64)
            if len(boxes):
                overlap = box_iou(boxes[:, :4], person)
                if overlap.max() > 0:
                    person = boxes[int(np.argmax(overlap)), :4]
            persons.append(person)
        samples = []
        for batch in self._batches(list(zip(images, persons))):
            inputs = [
                self._pose_pipeline(
                    dict(img=np.ascontiguousarray(image[..., ::-1]), bbox=person[None], bbox_score=np.ones(1, dtype=np.float32), **self.pose_model.dataset_meta)
                )
                for image, person in batch
            ]
            with self._torch.no_grad():
                samples += self.pose_model.test_step(self._collate(inputs))
        results = []
        for image, sample in zip(images, samples):
            result = empty_keypoints()
            instances = sample.pred_instances
            points = np.asarray(instances.keypoints, dtype=np.float64)[0]
            scores = np.asarray(instances.keypoint_scores, dtype=np.float64)[0]
            result[:] = wholebody_to_joints(np.column_stack([points, scores]))
            height, width = image.shape[:2]
            outside = (result[:, 0] < 0) | (result[:, 0] > width - 1) | (result[:, 1] < 0) | (result[:, 1] > height - 1)
            result[outside] = np.nan
            results.append(result)
        return results

    def close(self) -> None:
        self.pose_model = self.det_model = None
