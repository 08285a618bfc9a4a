"""The device calibration inside an Aria VRS recording (optional: projectaria-tools).

Ego-Exo4D ships each take's Aria recording as ``takes/<take>/<aria>.vrs`` and, without
its image streams, ``<aria>_noimagestreams.vrs`` (the file the public hand preparation
reads its calibration from). The calibration is read through projectaria-tools (the
``aria`` extra; `make setup` installs it ``--no-deps``, which is all this needs: its
import pulls numpy only): ``create_vrs_data_provider(path).get_device_calibration()``,
exported with projectaria-tools' own ``device_calibration_to_json_string`` and read by
:func:`pipeline.formats.aria.device_calibration_from_document`, the reader of every
device calibration JSON, so one set of rules (device generation, defaults, refusals)
serves both. projectaria-tools gives the cameras at the sizes of the recorded streams
(a Gen1 RGB recorded at 1408 x 1408 reads at 1408, valid radius 707.5) with
``ConfigData`` and the device class it decided (``Aria`` / ``Oatmeal``).
"""

from __future__ import annotations

import json
from pathlib import Path

from pipeline.formats.aria import AriaCameraCalibration, AriaFormatError, PathLike, device_calibration_from_document

EXTRA_HINT = (
    "the optional 'aria' extra: pip install --no-deps projectaria-tools==2.3.0 (what `make setup` does; "
    "its declared dependencies are not needed to read a calibration), or pip install '.[aria]'"
)


def _projectaria():
    """projectaria-tools' ``calibration`` and ``data_provider`` modules (ImportError if absent)."""
    from projectaria_tools.core import calibration, data_provider

    return calibration, data_provider


def vrs_device_calibration_json(path: PathLike) -> str:
    """The device calibration of a VRS file as projectaria-tools exports it (JSON text)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: Aria VRS file not found")
    try:
        calibration, data_provider = _projectaria()
    except ImportError as error:
        raise AriaFormatError(f"{path}: reading the Aria calibration of a VRS file needs projectaria-tools, {EXTRA_HINT} ({error})") from None
    provider = data_provider.create_vrs_data_provider(str(path))
    if provider is None:
        raise AriaFormatError(f"{path}: projectaria-tools cannot open this VRS file")
    device = provider.get_device_calibration()
    if device is None:
        raise AriaFormatError(f"{path}: the VRS file holds no device calibration")
    return calibration.device_calibration_to_json_string(device)


def read_vrs_calibration(path: PathLike, label: str, *, quaternion_tolerance: float) -> AriaCameraCalibration:
    """The ``label`` camera of a VRS file's device calibration (see the module docstring);
    ``quaternion_tolerance`` as :func:`pipeline.formats.aria.read_online_calibrations`."""
    text = vrs_device_calibration_json(path)
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise AriaFormatError(f"{path}: projectaria-tools' export of its device calibration is not JSON: {error}") from None
    return device_calibration_from_document(f"{path} (device calibration)", document, label, quaternion_tolerance=quaternion_tolerance)
