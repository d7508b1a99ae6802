"""The command line end to end on a tiny generated dataset."""

import pandas as pd
import pytest

from audioclust.cli import STAGES, build_parser, main


def test_help_lists_every_stage(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--help"])
    out = capsys.readouterr().out
    for name, _, _ in STAGES:
        assert name in out
    assert "run" in out and "demo" in out


def test_unknown_config_key_stops_before_work(project, caplog):
    rc = main(["metadata", "--dataset", "x", "--root", str(project), "--set", "audio.rate=1"])
    assert rc == 2
    assert "audio.rate" in caplog.text
    assert not (project / "metadata").exists()


@pytest.mark.parametrize("args, message", [
    (["--set", "features.n_fft=[1,2"], "--set 'features.n_fft=[1,2': the value is not valid YAML"),
    (["--config", "latin1.yaml"], "latin1.yaml is not UTF-8 text (byte 16 cannot be decoded): save it as UTF-8"),
    (["--config", "absent.yaml"], "absent.yaml"),
])
def test_bad_overrides_and_config_files_are_clear_errors(project, caplog, monkeypatch, args, message):
    (project / "latin1.yaml").write_bytes("seed: 3  # première\n".encode("latin-1"))
    monkeypatch.chdir(project)
    rc = main(["metadata", "--dataset", "x", "--root", str(project), *args])
    assert rc == 2
    assert message in caplog.text
    assert not (project / "metadata").exists()


def test_demo_refuses_a_users_dataset_folder(project, caplog):
    (project / "datasets" / "mine" / "birds").mkdir(parents=True)
    (project / "datasets" / "mine" / "birds" / "robin.wav").write_bytes(b"RIFF")
    assert main(["demo", "--dataset", "mine", "--root", str(project)]) == 2
    assert "holds files the demo did not write" in caplog.text
    assert [p.name for p in (project / "datasets" / "mine").rglob("*")] == ["birds", "robin.wav"]


def test_missing_dataset_is_a_clear_error(project, caplog):
    rc = main(["run", "--dataset", "nothing", "--root", str(project)])
    assert rc == 2
    assert "datasets/nothing" in caplog.text.replace("\\", "/")


def test_run_chain_on_a_small_demo(project):
    root = str(project)
    assert main(["generate-demo", "--dataset", "mini", "--root", root]) == 0
    rc = main(["run", "--dataset", "mini", "--root", root, "--n-jobs", "1",
               "--stages", "metadata", "transform", "extract", "--set", "features.kinds=[mel, mfcc]"])
    assert rc == 0
    meta = pd.read_csv(project / "metadata" / "mini" / "metadata.csv")
    feats = pd.read_csv(project / "features" / "mini" / "features.csv")
    assert len(meta) == len(feats) > 0
    assert (feats["status"] == "ok").all()
    stem, label = feats.loc[0, "stem"], feats.loc[0, "label"]
    assert (project / "features" / "mini" / "mel" / label / f"{stem}.npy").is_file()
    assert not (project / "features" / "mini" / "chroma").exists()
