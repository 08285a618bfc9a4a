"""Configuration: defaults documented, bad keys refused by name."""

import re

import pytest

from pipeline.config import DEFAULT_CONFIG, ConfigError, load_config


def test_defaults_load_and_every_setting_is_documented_with_a_unit():
    config = load_config()
    assert config.triangulation.threshold_px > 0
    lines = DEFAULT_CONFIG.read_text().splitlines()
    for number, line in enumerate(lines):
        match = re.match(r"^\s+(\w+):\s*\S", line)
        if not match:
            continue
        comments = []
        k = number - 1
        while k >= 0 and lines[k].strip().startswith("#"):
            comments.insert(0, lines[k])
            k -= 1
        assert comments, f"{DEFAULT_CONFIG}:{number + 1}: setting {match.group(1)!r} has no comment"
        assert re.search(r"\[[^\]]+\]\s*$", comments[-1]), f"setting {match.group(1)!r}: comment must end with [unit]"


@pytest.mark.parametrize(
    "override, message",
    [
        ("triangulation.threshold_px=-1", "key 'triangulation.threshold_px' must be > 0.0"),
        ("triangulation.min_views=1", "key 'triangulation.min_views' must be >= 2"),
        ("triangulation.ransac=3", "key 'triangulation.ransac' must be true or false"),
        ("triangulation.refine_iterations=1.5", "key 'triangulation.refine_iterations' must be an integer"),
        ("triangulation.min_confidence=2", "key 'triangulation.min_confidence' must be <= 1.0"),
        ("triangulation.foo=1", "unknown key 'triangulation.foo'"),
        ("nosuchsection.key=1", "unknown key 'nosuchsection'"),
        ("detect.backend=magic", "key 'detect.backend' must be one of ['mediapipe', 'mmpose', 'precomputed']"),
        ("detect.openpose_layout=BODY_99", "key 'detect.openpose_layout' must be one of"),
        ("noequals", "expected section.key=value"),
        ("qa.flags.reprojection_error_px=20", "key 'qa.flags.reprojection_error_px' (20.0) must be below 'qa.error_bad_px' (15.0)"),
    ],
)
def test_bad_overrides_are_refused_naming_the_key(override, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(overrides=[override])


def test_preset_file_errors_name_the_file_and_key(tmp_path):
    preset = tmp_path / "mine.yaml"
    preset.write_text("triangulation:\n  threshold_px: 25\n  min_views: 3\n")
    config = load_config(preset)
    assert config.triangulation.threshold_px == 25.0 and config.triangulation.min_views == 3
    assert config.triangulation.ransac is True  # untouched keys keep their defaults
    preset.write_text("triangulation:\n  treshold_px: 25\n")
    with pytest.raises(ConfigError, match=rf"{re.escape(str(preset))}: unknown key 'triangulation.treshold_px'"):
        load_config(preset)
    preset.write_text("triangulation: [1, 2]\n")
    with pytest.raises(ConfigError, match="key 'triangulation' must be a mapping"):
        load_config(preset)
    preset.write_text("triangulation: {threshold_px: 25\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(preset)
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "missing.yaml")


def test_null_is_accepted_only_where_allowed():
    assert load_config(overrides=["detect.openpose_layout=BODY_25B"]).detect.openpose_layout == "BODY_25B"
    with pytest.raises(ConfigError, match="key 'triangulation.huber_px' must be a number"):
        load_config(overrides=["triangulation.huber_px=null"])


def test_the_cli_reports_a_bad_setting_without_a_traceback(capsys, caplog):
    from workflow.cli import main

    assert main(["run", "nowhere", "--out", "nowhere", "--set", "triangulation.min_views=1"]) == 2
    assert "key 'triangulation.min_views' must be >= 2" in caplog.text


@pytest.mark.parametrize("text", ["5", "a:b", "20:10", "-3:10", "1:2:3", "7:7"])
def test_overlay_frames_is_checked_when_the_config_loads(text):
    """A bad qa.overlay_frames fails at start-up, before detect..export run (not when QA reaches it)."""
    with pytest.raises(ConfigError, match=r"key 'qa.overlay_frames' must be 'start:stop'"):
        load_config(overrides=[f"qa.overlay_frames='{text}'"])


def test_overlay_frames_accepts_ranges_and_says_to_quote_numbers():
    for text in ("10:20", ":20", "10:", "0:1"):
        assert load_config(overrides=[f"qa.overlay_frames='{text}'"]).qa.overlay_frames == text
    with pytest.raises(ConfigError, match="quote"):  # YAML reads an unquoted 10:20 as the number 620
        load_config(overrides=["qa.overlay_frames=10:20"])


def test_report_frames_errors_name_the_option(tmp_path, capsys):
    from workflow.cli import main

    with pytest.raises(SystemExit):
        main(["report", str(tmp_path), "--frames", "5"])
    error = capsys.readouterr().err
    assert "--frames" in error and "START:STOP" in error and "qa.overlay_frames" not in error


def test_settings_stored_by_an_earlier_version_load_under_their_new_names():
    """`report` on an older output: its run.json's moved keys are read where they went,
    removed ones dropped."""
    import dataclasses

    from pipeline.config import load_config

    stored = dataclasses.asdict(load_config())
    mmpose = stored["detect"].pop("mmpose")
    stored["detect"].update(mmpose_config="/models/pose.py", mmdet_config=None, mmpose_checkpoint=None, mmdet_checkpoint=None,
                            device="cuda:0", mmpose_batch_size=4, min_box_score=mmpose["min_box_score"])  # fmt: skip
    stored["fit_body_model"].pop("anny")
    stored["fit_body_model"]["anny_cache_dir"] = "/cache/anny"
    stored["qa"]["error_good_px"] = 3.0
    config = load_config(base=stored)
    assert config.detect.mmpose.pose_config == "/models/pose.py" and config.detect.mmpose.device == "cuda:0"
    assert config.detect.mmpose.batch_size == 4 and config.fit_body_model.anny.cache_dir == "/cache/anny"
    assert not hasattr(config.qa, "error_good_px")
