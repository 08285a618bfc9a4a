"""Stage calibrate_check on synthetic takes whose calibration is wrong on purpose, and on the real capture.

The takes come from ``synth``'s perturbation options (truth in ``gt/rig_perturbation.json``):
one exo camera rotated 1 degree and moved 3 cm, one camera 1.5 frames late. ``correct``
mode must find and apply the truth (0.1 degree, 5 mm, 0.1 frame), give labels whose
MPJPE is within 10 % of the unperturbed take's, and keep the original calibration in the
export; ``check`` mode must change nothing after it.
"""

import json

import numpy as np
import pytest

from pipeline.config import load_config
from pipeline.formats.calibration import read_gopro_calibs_csv
from pipeline.formats.rig_check import RigCorrections, load_rig_corrections, save_rig_corrections
from triangulation.rig_check import corrected_camera
from workflow import runner
from workflow.benchmarks.calibrate import rotation_angle_deg
from workflow.evaluation import evaluate_arrays
from workflow.synth.perturbation import RigPerturbation
from workflow.synth.take_writer import SynthConfig, synthesize_take

pytestmark = pytest.mark.integration  # runs stages on take folders

FRAMES = 600  # the bounds hold from about 600 frames of a person walking (300 is not always enough)
SEED = 3
PRECOMPUTED = ["detect.backend=precomputed", "qa.report=false", "qa.recording=false"]
CORRECT = [*PRECOMPUTED, "calibrate_check.mode=correct"]


@pytest.fixture(scope="module")
def takes(tmp_path_factory):
    root = tmp_path_factory.mktemp("rig_takes")
    cases = {
        "unperturbed": RigPerturbation(),
        "moved": RigPerturbation(camera="cam02", rotation_deg=1.0, translation_m=0.03),
        "shifted": RigPerturbation(time_shift_camera="cam03", time_shift_frames=1.5),
    }
    folders = {}
    for name, perturbation in cases.items():
        folders[name] = root / name / f"synth_seed{SEED}"
        synthesize_take(folders[name], SynthConfig(seed=SEED, num_frames=FRAMES, perturbation=perturbation), render=False)
    return folders


def _run(take, out, overrides, until=None):
    report = runner.run_take(take, out, load_config(overrides=overrides), until=until)
    return out / report.take


def _body_mpjpe(out, take) -> float:
    points = np.load(out / "refine" / "joints_3d.npz", allow_pickle=False)["points"]
    truth = np.load(take / "gt" / "joints_3d.npz", allow_pickle=False)["joints_3d"]
    return evaluate_arrays(points, truth, 30.0)["parts"]["body"]["mpjpe_mm"]


@pytest.fixture(scope="module")
def unperturbed_mpjpe(takes, tmp_path_factory):
    out = _run(takes["unperturbed"], tmp_path_factory.mktemp("out_unperturbed"), PRECOMPUTED, until="refine")
    report = json.loads((out / "calibrate_check" / "rig_check.json").read_text())
    assert report["status"] == "checked" and report["would_apply"] == []  # nothing to correct
    assert not (out / "calibrate_check" / "rig.npz").exists()
    return _body_mpjpe(out, takes["unperturbed"])


def test_correct_mode_recovers_a_moved_camera_and_the_labels(takes, unperturbed_mpjpe, tmp_path):
    take = takes["moved"]
    out = _run(take, tmp_path, CORRECT)
    truth = json.loads((take / "gt" / "rig_perturbation.json").read_text())
    report = json.loads((out / "calibrate_check" / "rig_check.json").read_text())
    assert report["applied"] == ["cam02"], report
    corrections = load_rig_corrections(out / "calibrate_check" / "rig.npz")
    view = corrections.camera_names.index("cam02")
    true_R = np.array(truth["true"]["R"])
    center = -corrections.R[view].T @ corrections.t[view]
    assert rotation_angle_deg(corrections.R[view], true_R) < 0.1
    assert np.linalg.norm(center - np.array(truth["true"]["center"])) < 0.005
    assert corrections.applied.tolist() == [name == "cam02" for name in corrections.camera_names]
    written = {camera.name: camera for camera in read_gopro_calibs_csv(take / "trajectory" / "gopro_calibs.csv")}
    assert np.allclose(corrections.R_original[view], written["cam02"].R) and np.allclose(corrections.t_original[view], written["cam02"].t)
    # before the correction its rotation alone is 1 degree off
    assert rotation_angle_deg(written["cam02"].R, true_R) == pytest.approx(1.0, abs=1e-6)
    camera = report["cameras"]["cam02"]
    assert camera["reprojection_px_after"] < camera["reprojection_px_before"]
    # the labels: within 10 % of the unperturbed take's
    assert _body_mpjpe(out, take) <= 1.1 * unperturbed_mpjpe
    # the export keeps the original calibration beside the corrected one
    pose = json.loads((out / "export" / "camera_pose.json").read_text())
    entry = pose["cam02"]
    assert np.allclose(np.array(entry["calibrate_check"]["original_camera_extrinsics"]), np.hstack([written["cam02"].R, written["cam02"].t[:, None]]))
    assert np.allclose(np.array(entry["camera_extrinsics"]), np.hstack([corrections.R[view], corrections.t[view][:, None]]), atol=1e-9)
    assert "calibrate_check" not in pose["cam01"]
    metrics = json.loads((out / "qa" / "metrics.json").read_text())
    assert metrics["calibrate_check"]["applied"] == ["cam02"]


def test_check_mode_flags_and_changes_nothing_after_it(takes, tmp_path):
    take = takes["moved"]
    checked = _run(take, tmp_path / "check", PRECOMPUTED, until="refine")
    off = _run(take, tmp_path / "off", [*PRECOMPUTED, "calibrate_check.enabled=false"], until="refine")
    report = json.loads((checked / "calibrate_check" / "rig_check.json").read_text())
    assert report["mode"] == "check" and report["would_apply"] == ["cam02"] and report["applied"] == []
    assert sorted(path.name for path in (checked / "calibrate_check").iterdir()) == ["manifest.json", "rig_check.json"]
    assert not (off / "calibrate_check").exists()
    assert (checked / "refine" / "joints_3d.npz").read_bytes() == (off / "refine" / "joints_3d.npz").read_bytes()


def test_correct_mode_recovers_a_late_camera(takes, unperturbed_mpjpe, tmp_path):
    take = takes["shifted"]
    out = _run(take, tmp_path, CORRECT, until="refine")
    report = json.loads((out / "calibrate_check" / "rig_check.json").read_text())
    assert report["applied"] == ["cam03"], report
    assert report["cameras"]["cam03"]["time_offset_frames"] == pytest.approx(1.5, abs=0.1)
    corrections = load_rig_corrections(out / "calibrate_check" / "rig.npz")
    assert corrections.time_offset_frames[corrections.camera_names.index("cam03")] == pytest.approx(1.5, abs=0.1)
    assert (out / "calibrate_check" / "keypoints_2d.npz").is_file()
    assert _body_mpjpe(out, take) <= 1.1 * unperturbed_mpjpe


def test_a_short_take_is_not_checked_and_says_why(tmp_path):
    take = tmp_path / "short"
    synthesize_take(take, SynthConfig(seed=1, num_frames=20, perturbation=RigPerturbation(camera="cam01")), render=False)
    out = _run(take, tmp_path / "out", CORRECT, until="refine")
    report = json.loads((out / "calibrate_check" / "rig_check.json").read_text())
    assert report["status"] == "insufficient" and report["applied"] == [] and report["reasons"]
    assert not (out / "calibrate_check" / "rig.npz").exists()


def test_the_corrections_file_round_trips_and_names_a_bad_field(tmp_path):
    from triangulation.synthetic import ring_of_cameras

    cameras = ring_of_cameras(3)
    R = np.stack([camera.R for camera in cameras])
    t = np.stack([camera.t for camera in cameras])
    corrections = RigCorrections(
        camera_names=tuple(camera.name for camera in cameras), R=R[::-1].copy(), t=t + 0.01, R_original=R, t_original=t,
        focal_scale=np.array([1.0, 1.01, 1.0]), time_offset_frames=np.array([0.0, 0.5, 0.0]), applied=np.array([False, True, False]),
    )  # fmt: skip
    save_rig_corrections(tmp_path / "rig.npz", corrections)
    back = load_rig_corrections(tmp_path / "rig.npz")
    assert back.camera_names == corrections.camera_names and np.array_equal(back.R, corrections.R)
    corrected = back.corrected(list(reversed(cameras)))
    assert [camera.name for camera in corrected] == [camera.name for camera in reversed(cameras)]
    assert corrected[1].model.fx == pytest.approx(cameras[1].model.fx * 1.01) and np.array_equal(corrected[1].R, corrections.R[1])
    assert corrected[0] is cameras[2] and np.array_equal(corrected_camera(cameras[0], R[0], t[0]).R, cameras[0].R)
    np.savez(
        tmp_path / "bad.npz",
        **{
            **{name: getattr(back, name) for name in ("R", "t", "R_original", "t_original", "focal_scale", "applied")},
            "camera_names": np.array(back.camera_names),
            "time_offset_frames": np.zeros(2),
        },
    )
    with pytest.raises(ValueError, match="time_offset_frames"):
        load_rig_corrections(tmp_path / "bad.npz")


def test_the_real_capture_is_checked_and_says_whether_it_would_apply(pose2sim_openpose):
    """The Pose2Sim capture (4 cameras, 100 frames of OpenPose): every camera gets its
    correction, uncertainty and reprojection error before/after, and the decision follows
    the rules (docs/RESULTS.md has the numbers)."""
    from fitting.skeleton import BODY
    from pipeline.formats.rig_check import rig_check_document
    from triangulation.rig_check import check_rig
    from triangulation.triangulate import triangulate

    cameras, keypoints = pose2sim_openpose
    config = load_config()
    points = triangulate(cameras, keypoints, **vars(config.triangulation)).points
    check = check_rig(cameras, keypoints[:, :, BODY], points[:, BODY], 30.0, config.calibrate_check)
    assert check.status in ("checked", "no_majority") and check.frames >= config.calibrate_check.min_frames
    for camera in check.cameras:
        assert camera.observations > 500
        assert np.isfinite([camera.rotation_deg, camera.rotation_sigma_deg, camera.translation_mm, camera.translation_sigma_mm]).all()
        assert camera.reprojection_px_after < camera.reprojection_px_before  # its own adjustment fits it better
        assert camera.status in ("ok", "offset", "not_determined")
        assert (camera.status == "ok") == (not camera.reasons)  # anything else says why
        # the time offset found inside its window, not run to its edge (it did, for every
        # camera, while the pose was fitted jointly from degrees off)
        assert abs(camera.time_offset_frames - camera.whole_frame_offset) < 0.9
    applied = check.apply()
    assert set(applied) <= {camera.name for camera in check.cameras if camera.status == "offset"}
    if check.status != "checked":
        assert applied == () and check.reasons
    document = rig_check_document(check, 30.0, "check", ())
    assert list(document["cameras"]) == [camera.name for camera in cameras]
    json.dumps(document, allow_nan=False)  # the report is valid JSON


def test_the_qa_report_shows_the_check_and_what_was_done():
    from stages.qa.report import rig_check_html

    camera = {
        "status": "offset", "applied": True, "would_apply": True, "rotation_deg": 1.0123, "rotation_sigma_deg": 0.05,
        "translation_mm": 29.5, "translation_sigma_mm": 2.6, "time_offset_ms": None, "time_offset_sigma_ms": None,
        "reprojection_px_before": 12.8, "reprojection_px_after": 2.4, "reasons": ["rotation 1.01 deg (sigma 0.05) > 0.2"],
    }  # fmt: skip
    ok = {**camera, "status": "ok", "applied": False, "would_apply": False, "reasons": []}
    document = {
        "mode": "correct",
        "status": "checked",
        "samples": 5000,
        "frames": 600,
        "trusted": ["cam01"],
        "reasons": [],
        "cameras": {"cam02": camera, "cam<01>": ok},
    }
    page = rig_check_html(document)
    assert "APPLIED" in page and "1.012 &plusmn; 0.050" in page and "12.80 &rarr; 2.40" in page and "correct mode" in page
    assert "cam&lt;01&gt;" in page and "<01>" not in page  # names escaped
    assert rig_check_html(None) == ""
