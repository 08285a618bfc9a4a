"""The pipeline runner: stages, caching, resume after a failure, batches, exported files."""

import dataclasses
import json
import shutil

import numpy as np
import pytest

from fitting.skeleton import JOINT_NAMES
from pipeline.config import load_config
from tests.paths import REPO_ROOT
from workflow import runner
from workflow.commands.run import log_reports
from workflow.synth.take_writer import SynthConfig, synthesize_take

pytestmark = pytest.mark.integration  # runs stages or the pipeline on take folders, videos or the real capture

# These takes are written without videos: detection reads their simulated OpenPose files.
PRECOMPUTED = ["detect.backend=precomputed"]


@pytest.fixture(scope="module")
def take_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("take") / "small_take"
    synthesize_take(folder, SynthConfig(seed=5, num_frames=20), render=False)
    return folder


def test_run_take_writes_every_stage(take_dir, tmp_path):
    report = runner.run_take(take_dir, tmp_path, load_config(overrides=PRECOMPUTED))
    assert report.ran == list(runner.stage_names(load_config())) and report.skipped == []
    out = tmp_path / report.take
    joints = np.load(out / "triangulate" / "joints_3d.npz", allow_pickle=False)
    assert joints["points"].shape == (20, 59, 3) and joints["inliers"].shape == (4, 20, 59)
    assert list(joints["joint_names"]) == list(JOINT_NAMES)
    manifest = json.loads((out / "triangulate" / "manifest.json").read_text())
    assert manifest["summary"]["body"]["reconstructed"] > 0.9
    joints = np.load(out / "refine" / "joints_3d.npz", allow_pickle=False)  # what export writes
    assert joints["points"].shape == (20, 59, 3) and joints["bone_lengths"].shape == (59,)
    body = json.loads((out / "export" / "body_annotation.json").read_text())
    hand = json.loads((out / "export" / "hand_annotation.json").read_text())
    frame = body["0"][0]
    assert frame["metadata"]["frame_number"] == 0 and frame["metadata"]["take_name"] == report.take
    present = np.isfinite(joints["points"][0, :17, 0])
    assert len(frame["annotation3D"]) == present.sum()  # missing joints are absent, never zero
    nose = frame["annotation3D"]["nose"]
    assert np.allclose([nose["x"], nose["y"], nose["z"]], joints["points"][0, 0])
    assert nose["num_views_for_3d"] == joints["num_views"][0, 0]
    assert set(frame["annotation2D"]) <= {"cam01", "cam02", "cam03", "cam04", "aria01"}
    assert "left_wrist" in hand["0"][0]["annotation3D"] and "right_pinky_4" in JOINT_NAMES[58]
    assert (out / "export" / "joints_3d.trc").is_file()


def test_rerun_skips_what_is_up_to_date_and_recomputes_what_changed(take_dir, tmp_path):
    config = load_config(overrides=PRECOMPUTED)
    runner.run_take(take_dir, tmp_path, config)
    again = runner.run_take(take_dir, tmp_path, config)
    assert again.ran == [] and again.skipped == list(runner.stage_names(config))
    changed = runner.run_take(take_dir, tmp_path, load_config(overrides=PRECOMPUTED + ["triangulation.threshold_px=25"]))
    assert changed.skipped == ["detect"] and changed.ran == ["triangulate", "calibrate_check", "refine", "project_ego", "export", "qa"]
    export_only = runner.run_take(take_dir, tmp_path, load_config(overrides=PRECOMPUTED + ["triangulation.threshold_px=25", "export.filled_joints=zero_views"]))
    assert export_only.ran == ["export"] and export_only.skipped[-1] == "qa"  # qa does not read export
    forced = runner.run_take(take_dir, tmp_path, load_config(overrides=PRECOMPUTED + ["triangulation.threshold_px=25"]), force_from="detect")
    assert forced.ran == list(runner.stage_names(config))


def test_a_failed_stage_loses_nothing_finished_and_resumes(take_dir, tmp_path, monkeypatch):
    config = load_config(overrides=PRECOMPUTED)
    specs = list(runner.STAGES)

    def broken(context):
        (context.work / "partial.json").write_text("{")
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(runner, "STAGES", tuple(dataclasses.replace(s, run=broken) if s.name == "export" else s for s in specs))
    with pytest.raises(RuntimeError, match="disk on fire"):
        runner.run_take(take_dir, tmp_path, config)
    out = tmp_path / "synth_seed5"
    assert (out / "triangulate" / "manifest.json").is_file()
    assert not (out / "export").exists()
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == []  # no half-written folder left
    monkeypatch.setattr(runner, "STAGES", tuple(specs))
    resumed = runner.run_take(take_dir, tmp_path, config)
    assert resumed.skipped == ["detect", "triangulate", "calibrate_check", "refine", "project_ego"] and resumed.ran == ["export", "qa"]


def test_one_failing_take_does_not_stop_the_batch(take_dir, tmp_path):
    broken = tmp_path / "not_a_take"
    broken.mkdir()
    reports = runner.run_batch([broken, take_dir], tmp_path / "out", load_config(overrides=PRECOMPUTED))
    assert [report.ok for report in reports] == [False, True]
    assert "not a take folder" in reports[0].error and str(broken) in reports[0].error
    summary = json.loads((tmp_path / "out" / "batch_summary.json").read_text())
    assert summary["takes"] == 2 and summary["failed"] == 1
    assert log_reports(reports) == 1
    assert log_reports(reports[1:]) == 0


def test_missing_keypoint_folder_is_named(take_dir, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(take_dir, copy)
    shutil.rmtree(copy / "keypoints2d" / "openpose" / "cam02")
    with pytest.raises(FileNotFoundError, match="camera\\(s\\) without input: cam02 \\(no 2D keypoint folder\\)"):
        runner.run_take(copy, tmp_path / "out", load_config(overrides=PRECOMPUTED + ["detect.missing_camera=fail"]))


def test_takes_run_in_parallel_on_ray_with_the_same_results(take_dir, tmp_path):
    pytest.importorskip("ray")

    second = tmp_path / "second_take"
    synthesize_take(second, SynthConfig(seed=6, num_frames=20), render=False)
    same_name = tmp_path / "same_name"
    shutil.copytree(take_dir, same_name)
    broken = tmp_path / "broken"
    broken.mkdir()
    config = load_config(overrides=[*PRECOMPUTED, "batch.parallel_takes=2"])
    reports = runner.run_batch([take_dir, broken, second, same_name], tmp_path / "parallel", config)
    assert [report.ok for report in reports] == [True, False, True, False]
    assert "not a take folder" in reports[1].error
    assert "take name 'synth_seed5' is also the name of" in reports[3].error
    sequential = runner.run_take(take_dir, tmp_path / "sequential", load_config(overrides=PRECOMPUTED))
    name = sequential.take
    a = np.load(tmp_path / "parallel" / name / "refine" / "joints_3d.npz", allow_pickle=False)
    b = np.load(tmp_path / "sequential" / name / "refine" / "joints_3d.npz", allow_pickle=False)
    np.testing.assert_array_equal(a["points"], b["points"])


def test_a_stage_reading_a_settings_section_it_does_not_declare_fails(tmp_path):
    from fitting.refine import RefineSettings, TrackFitSettings
    from pipeline.config import RefineConfig, load_config
    from stages.base import StageContext

    context = StageContext(take=None, config=load_config(), inputs={}, work=tmp_path, sections=("refine",))
    settings = context.settings("refine")  # typed: the section's dataclass, the library's schema inside
    assert isinstance(settings, RefineConfig) and isinstance(settings, RefineSettings) and isinstance(settings.fit, TrackFitSettings)
    assert settings.executor == "auto"
    with pytest.raises(KeyError, match="'qa' it does not declare"):
        context.settings("qa")


def test_every_stage_declares_the_sections_it_reads():
    """The stages read settings only through ``context.settings``: no stage module reaches
    for ``context.config`` (whose sections would escape the fingerprint)."""

    for path in sorted((REPO_ROOT / "stages").rglob("*.py")):
        assert "context.config" not in path.read_text(encoding="utf-8"), path
