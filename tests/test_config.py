import dataclasses
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from audioclust.config import Config, default_yaml, load_config, schema, section_hash
from audioclust.core.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


def test_default_yaml_lists_every_key_with_the_schema_default():
    data = yaml.safe_load((REPO / "configs" / "default.yaml").read_text(encoding="utf-8"))
    assert data == Config().to_dict()


def test_default_yaml_is_the_file_the_schema_generates():
    committed = (REPO / "configs" / "default.yaml").read_text(encoding="utf-8")
    assert committed == default_yaml(), "regenerate it: python -m audioclust.config > configs/default.yaml"


def test_loading_default_yaml_gives_exactly_the_schema_defaults(tmp_path):
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "default.yaml").write_text(default_yaml(), encoding="utf-8")
    loaded = load_config(tmp_path)
    assert loaded == Config()
    assert loaded.to_dict() == Config().to_dict()


def test_generator_runs_as_a_module():
    out = subprocess.run([sys.executable, "-m", "audioclust.config"], capture_output=True, check=True)
    assert out.stdout.decode("utf-8") == default_yaml()


def _leaves(obj, prefix=""):
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            yield from _leaves(value, f"{prefix}{f.name}.")
        else:
            yield f"{prefix}{f.name}"


def test_every_key_has_a_one_line_description_and_no_measurements():
    specs = list(schema())
    assert sorted(s.name for s in specs if not s.is_section) == sorted(_leaves(Config()))
    for spec in specs:
        texts = [spec.doc, *spec.items.values()]
        for text in texts:
            assert text.strip() and "\n" not in text, spec.name
            # results belong in docs/benchmarks.md, not in the description of a key
            assert not any(word in text for word in ("NMI", "FSDD", "benchmark")), (spec.name, text)


def _default(key: str):
    value = Config()
    for part in key.split("."):
        value = value[part] if isinstance(value, dict) else getattr(value, part)
    return value


def test_the_measurements_behind_the_defaults_name_todays_defaults():
    # each line gives a key's default when it was measured; a changed default must say "then ... now ..."
    text = (REPO / "docs" / "benchmarks.md").read_text().split("## Measurements behind the defaults")[1]
    lines = re.findall(r"^- `([\w.]+)` \((then )?`([^`]*)`(?:; now `([^`]*)`)?", text, re.M)
    assert len(lines) >= 20
    for key, then, value, now in lines:
        if then:
            assert now, f"{key}: a changed default says what it is now"
            assert yaml.safe_load(value) != _default(key), key
            value = now
        assert yaml.safe_load(value) == _default(key), f"{key}: the list says {value}, the default is {_default(key)}"


def test_precedence_default_dataset_file_set(project):
    (project / "configs" / "ds.yaml").write_text("features:\n  n_fft: 1024\n  hop_length: 256\n")
    extra = project / "extra.yaml"
    extra.write_text("features:\n  hop_length: 128\n")
    cfg = load_config(project, "ds", extra, ["audio.sample_rate=16000", "features.kinds=[mel]"])
    assert cfg.features.n_fft == 1024
    assert cfg.features.hop_length == 128
    assert cfg.audio.sample_rate == 16000
    assert cfg.features.kinds == ["mel"]
    assert load_config(project, "other").features.n_fft == 2048


@pytest.mark.parametrize("override, words", [
    ("features.n_ftt=1024", ["features.n_ftt", "features.n_fft"]),
    ("dataset.labels=colour", ["dataset.labels", "'folder'"]),
    ("features.kinds=[mel, mfcc2]", ["features.kinds[1]", "'chroma'"]),
    ("audio.sample_rate=fast", ["audio.sample_rate", "integer"]),
    ("audio.order=0", ["audio.order", ">= 1"]),
    ("features.hop_length=4096", ["features.hop_length", "n_fft"]),
    ("audio=3", ["audio", "section"]),
    ("dataset.labels=regex", ["dataset.label_regex"]),
])
def test_bad_values_name_the_key(override, words):
    with pytest.raises(ConfigError) as err:
        load_config(overrides=[override])
    for w in words:
        assert w in str(err.value)


def test_set_without_equals_is_explained():
    with pytest.raises(ConfigError, match="key=value"):
        load_config(overrides=["features.n_fft"])


def test_section_hash_changes_only_with_its_sections():
    a = load_config()
    b = load_config(overrides=["features.n_fft=1024"])
    assert section_hash(a, "audio") == section_hash(b, "audio")
    assert section_hash(a, "features") != section_hash(b, "features")
    assert len(section_hash(a, "audio")) == 12


@pytest.mark.parametrize("old, new", [("views.image.per_file", "images.per_file"), ("autoencoder.trim_db", "images.trim_db")])
def test_a_moved_key_says_where_it_went(old, new):
    with pytest.raises(ConfigError, match=f"config key '{old}' .* is now '{new}'"):
        load_config(overrides=[f"{old}=null"])


def test_image_preparation_is_declared_once_for_views_and_autoencoder():
    cfg = load_config(overrides=["images.trim_db=12", "images.per_file={mel: meanvar}"])
    assert not hasattr(cfg.views.image, "trim_db") and not hasattr(cfg.autoencoder, "per_file")
    assert (cfg.images.trim_db, cfg.images.per_file) == (12.0, {"mel": "meanvar"})
