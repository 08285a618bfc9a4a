"""The optional body model fit: SMPL-family loading and kinematics against ``smplx``,
the fit on synthetic takes (Anny and generated smplx-layout model files), meshes,
errors, and the pipeline without it (no torch imported)."""

import dataclasses
import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from pipeline.config import load_config
from tests.paths import REPO_ROOT
from workflow.synth.take_writer import SynthConfig, generate_take, synthesize_take

pytestmark = pytest.mark.integration  # runs stages or the pipeline on take folders, videos or the real capture

ROOT = REPO_ROOT
SEED = 11


def test_default_pipeline_is_unaffected_and_imports_no_torch(tmp_path):
    script = textwrap.dedent(
        f"""
        import sys
        from workflow import runner
        from pipeline.config import load_config
        from workflow.synth.take_writer import SynthConfig, synthesize_take
        synthesize_take({str(tmp_path / "take")!r}, SynthConfig(seed=3, num_frames=8), render=False)
        report = runner.run_take({str(tmp_path / "take")!r}, {str(tmp_path / "out")!r}, load_config(overrides=["detect.backend=precomputed"]))
        print(report.ran)
        assert "fit_body_model" not in report.ran
        assert "torch" not in sys.modules, "torch was imported"
        """
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "'export'" in result.stdout
    assert not list((tmp_path / "out").glob("*/fit_body_model"))


def test_smplx_without_model_files_names_the_files_and_where(tmp_path):
    pytest.importorskip("torch")
    from stages.fit_body_model import load_body_model

    settings = load_config(overrides=["fit_body_model.backend=smplx"]).fit_body_model
    with pytest.raises(FileNotFoundError) as error:
        load_body_model(settings)
    message = str(error.value)
    assert "SMPLX_NEUTRAL.npz" in message and "smpl-x.is.tue.mpg.de" in message and "fit_body_model.smplx.model_path" in message
    settings = dataclasses.replace(settings, smplx=dataclasses.replace(settings.smplx, model_path=str(tmp_path), model_type="smplh"))
    with pytest.raises(FileNotFoundError, match="SMPLH_NEUTRAL.npz"):
        load_body_model(settings)


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory):
    pytest.importorskip("torch")
    pytest.importorskip("smplx")
    from workflow.synth.body_model_files import write_smpl_family_model

    folder = tmp_path_factory.mktemp("models")
    for model_type in ("smplx", "smplh", "smpl"):
        write_smpl_family_model(folder, model_type, seed=SEED)
    return folder


@pytest.mark.parametrize("model_type", ["smplx", "smplh", "smpl"])
def test_model_points_equal_the_smplx_forward_pass(model_folder, model_type):
    import torch

    from pipeline.formats.body_model import load_smpl_family

    model = load_smpl_family(model_type, str(model_folder))
    assert model.num_vertices == (10475 if model_type == "smplx" else 6890)
    generator = torch.Generator().manual_seed(0)
    shape = 0.5 * torch.randn(model.shape_size, generator=generator)
    pose = 0.4 * torch.randn(3, len(model.pose_names), 3, generator=generator)
    points = model.points(shape, pose)
    vertices, joints = model.vertices(shape, pose), model.model_joints(shape, pose)
    checked = 0
    for index, source in enumerate(model.sources):
        if source.kind == "joint":
            reference = joints[:, 1 + model.pose_names.index(source.name)]
        elif source.kind == "vertex":
            reference = vertices[:, int(source.name.split()[1])]
        else:
            assert model_type == "smpl" and index >= 17  # SMPL's hands have no finger joints
            continue
        assert torch.allclose(points[:, index], reference, atol=1e-5), source
        checked += 1
    assert checked == (29 if model_type == "smpl" else 59)


@pytest.fixture(scope="module")
def refined_take():
    """A synthetic take's refined joints (what the stage reads) and its truth."""
    from fitting.refine import refine
    from triangulation.triangulate import triangulate

    config = load_config()
    synth = SynthConfig(seed=SEED, num_frames=60)
    take = generate_take(synth)
    raw = triangulate(take.exo_cameras, take.observations.keypoints, **config.section("triangulation"))
    refined = refine(take.exo_cameras, take.observations.keypoints, raw.points, raw.inliers, synth.fps, config.refine)
    return refined, take.motion, synth.fps


def _fit(model, refined, fps, frames=slice(None)):
    from fitting.body_model.fit import fit_body_model, joint_weights

    settings = load_config().fit_body_model
    weights = joint_weights(refined.confidence[frames], refined.filled[frames], refined.points[frames], settings.filled_weight)
    return fit_body_model(model, refined.points[frames], weights, fps, settings)


def _part_errors_mm(fit) -> tuple[float, float]:
    return 1000 * np.nanmean(fit.errors[:, :17]), 1000 * np.nanmean(fit.errors[:, 17:])


def test_fit_with_generated_smplx_model_recovers_pose_and_shape(model_folder, refined_take):
    import torch

    from pipeline.formats.body_model import load_smpl_family

    refined, motion, fps = refined_take
    model = load_smpl_family("smplx", str(model_folder))
    fit = _fit(model, refined, fps)
    body, hands = _part_errors_mm(fit)
    # The generated model has the take's skeleton, so these are the refined joints' noise plus what
    # the fit does not converge to (legs in deep squats: 16.5 / 8.6 mm measured).
    assert body < 25.0 and hands < 20.0, (body, hands)
    truth_error = 1000 * np.nanmean(np.linalg.norm(fit.joints[:, :17] - motion.joints[:, :17], axis=-1))
    assert truth_error < 25.0
    assert abs(fit.shape[0] - 0.5) < 0.1  # the template is the person shrunk by 1.05: betas[0] = 0.5 (1 % of the size per 0.1)
    # The native smplx parameters give the same world joints through smplx itself.
    native = model.native_parameters(fit.shape, fit.pose, fit.rotation, fit.translation)
    arguments = {name: torch.as_tensor(value, dtype=torch.float32) for name, value in native.items()}
    arguments["betas"] = arguments["betas"][None].expand(fit.pose.shape[0], -1)
    output = model.module(**arguments)
    wrist = model.pose_names.index("left_wrist") + 1
    assert np.allclose(output.joints[:, wrist].numpy(), fit.joints[:, 9], atol=1e-4)


def _run_stage(tmp_path, overrides):
    from workflow import runner

    take_dir = tmp_path / "take"
    synthesize_take(take_dir, SynthConfig(seed=SEED, num_frames=12), render=False)
    config = load_config(overrides=["detect.backend=precomputed", "fit_body_model.enabled=true"] + overrides)
    return runner.run_take(take_dir, tmp_path / "out", config, until="fit_body_model"), tmp_path / "out"


def test_stage_with_smplx_writes_parameters_errors_and_meshes(model_folder, tmp_path):
    trimesh = pytest.importorskip("trimesh")
    report, out = _run_stage(
        tmp_path,
        [
            "fit_body_model.backend=smplx",
            f"fit_body_model.smplx.model_path={model_folder}",
            "fit_body_model.mesh_format=glb",
            "fit_body_model.mesh_first_frame=2",
            "fit_body_model.mesh_last_frame=6",
            "fit_body_model.mesh_every=2",
            "fit_body_model.window_frames=6",
        ],
    )
    assert report.ran[-1] == "fit_body_model"
    folder = out / report.take / "fit_body_model"
    summary = json.loads((folder / "manifest.json").read_text())["summary"]
    assert summary["model"] == "smplx" and summary["frames"] == 12
    assert summary["mean_error_mm"]["body"] < 30 and len(summary["joint_mean_error_mm"]) == 59
    fitted = np.load(folder / "fitted_joints.npz", allow_pickle=False)
    assert fitted["points"].shape == (12, 59, 3) and fitted["errors"].shape == (12, 59)
    parameters = np.load(folder / "body_model.npz", allow_pickle=False)
    assert parameters["pose"].shape == (12, 54, 3) and "native_betas" in parameters
    index = json.loads((folder / "meshes" / "index.json").read_text())
    assert index["frames"] == [2, 4, 6] and index["vertices"] == 10475
    for name in index["files"]:
        mesh = trimesh.load(folder / name, force="mesh", process=False)
        assert len(mesh.vertices) == 10475


def test_stage_failure_keeps_finished_stages(tmp_path):
    pytest.importorskip("torch")
    with pytest.raises(FileNotFoundError, match="SMPLX_NEUTRAL"):
        _run_stage(tmp_path, ["fit_body_model.backend=smplx"])
    take = next((tmp_path / "out").iterdir())
    assert (take / "refine" / "manifest.json").is_file() and not (take / "fit_body_model").exists()


@pytest.fixture(scope="module")
def anny_model():
    pytest.importorskip("torch")
    pytest.importorskip("anny", reason="the bodymodel extra (anny) is not installed: make setup-bodymodel")
    from pipeline.formats.body_model import load_anny

    return load_anny()  # the first start builds Anny's cache (~1.5 min)


def test_anny_fit_meets_the_accuracy_goals_with_a_consistent_shape(anny_model, refined_take, tmp_path):
    import torch
    import trimesh

    refined, _, fps = refined_take
    # Each half of the take fitted alone: both within the goals, and the same body.
    halves = [_fit(anny_model, refined, fps, slice(0, 30)), _fit(anny_model, refined, fps, slice(30, 60))]
    for fit in halves:
        body, hands = _part_errors_mm(fit)
        assert body < 25.0 and hands < 15.0, (body, hands)
    zero_pose = torch.zeros(1, len(anny_model.pose_names), 3)
    with torch.no_grad():
        rests = [anny_model.points(torch.as_tensor(fit.shape, dtype=torch.float32), zero_pose)[0].numpy() for fit in halves]
    height = [rest[:, 2].max() - rest[:, 2].min() for rest in rests]
    assert abs(height[0] - height[1]) < 0.02
    assert np.abs(rests[0] - rests[1]).max() < 0.03
    # The mesh goes through trimesh and back with the model's vertex count.
    from pipeline.formats.body_model import write_mesh

    with torch.no_grad():
        pose = torch.as_tensor(halves[0].pose[:1], dtype=torch.float32)
        vertices = anny_model.vertices(torch.as_tensor(halves[0].shape, dtype=torch.float32), pose)[0].numpy()
    for suffix in ("glb", "ply"):
        write_mesh(tmp_path / f"mesh.{suffix}", vertices, anny_model.faces)
        mesh = trimesh.load(tmp_path / f"mesh.{suffix}", force="mesh", process=False)
        assert len(mesh.vertices) == anny_model.num_vertices == 13718
        assert len(mesh.faces) == len(anny_model.faces)


def test_qa_shows_the_fit_error_and_the_meshes(model_folder, tmp_path):
    pytest.importorskip("trimesh")
    from workflow import runner

    overrides = [
        "fit_body_model.backend=smplx",
        f"fit_body_model.smplx.model_path={model_folder}",
        "fit_body_model.mesh_format=ply",
        "fit_body_model.mesh_last_frame=4",
        "fit_body_model.mesh_every=2",
        "fit_body_model.window_frames=6",
    ]
    report, out = _run_stage(tmp_path, overrides)
    config = load_config(overrides=["detect.backend=precomputed", "fit_body_model.enabled=true"] + overrides)
    report = runner.run_take(tmp_path / "take", out, config)
    assert report.ran == ["project_ego", "export", "qa"]
    qa = out / report.take / "qa"
    metrics = json.loads((qa / "metrics.json").read_text())
    assert metrics["body_model"]["model"] == "smplx" and metrics["body_model"]["mean_error_mm"]["body"] < 30
    assert "body model (smplx)" in (qa / "report.html").read_text()
    if (qa / "recording.rrd").is_file():
        from rerun.chunk import RrdReader

        reader = RrdReader(qa / "recording.rrd")
        store = reader.store(store=reader.recordings()[0])
        rows = {line.split()[0]: int(line.split()[1].split("=")[1]) for line in store.summary().splitlines() if "timelines=['frame']" in line}
        assert rows["/world/body_model"] == 3  # frames 0, 2, 4


def test_every_body_model_backend_has_its_settings_section():
    import typing

    from pipeline.config import FitBodyModelConfig, load_config
    from stages.fit_body_model import BODY_MODELS

    assert set(BODY_MODELS) == set(typing.get_args(typing.get_type_hints(FitBodyModelConfig)["backend"]))
    for name in BODY_MODELS:
        settings = load_config(overrides=[f"fit_body_model.backend={name}"]).fit_body_model
        assert dataclasses.is_dataclass(getattr(settings, name))
