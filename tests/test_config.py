"""TOML configuration (defaults, validation naming the key, flag overrides) and run metadata."""

from __future__ import annotations

import dataclasses
import json
import math
import re
import time

import numpy as np
import pytest

from experiments.config import (
    DEFAULT_TOML,
    ConfigError,
    apply_overrides,
    default_config,
    load_config,
    merge,
)
from experiments.meta import package_versions, to_jsonable, write_result


def _toml(tmp_path, text):
    p = tmp_path / "user.toml"
    p.write_text(text)
    return p


def test_every_default_is_documented():
    """Each key line of default.toml carries a comment (the defaults are the documentation)."""
    for i, line in enumerate(DEFAULT_TOML.read_text().splitlines(), 1):
        if re.match(r"^[a-z_0-9]+\s*=", line):
            assert "#" in line, f"default.toml line {i} has no comment: {line!r}"


def test_defaults_match_library_defaults():
    """The TOML defaults equal the defaults of the dataclasses they configure."""
    from dtwin.sweep import SweepConfig
    from sim2real.transfer import TransferConfig

    c = load_config()
    s, t = SweepConfig(), TransferConfig()
    assert c["twin"]["snapshots"] == s.n_snapshots
    assert tuple(c["twin"]["areas"]) == s.areas
    for key, field in [
        ("n_sites", "n_sites"),
        ("ues_per_cell", "ues_per_cell"),
        ("cm_sampling", "cm_sampling"),
        ("chunk_size", "chunk_size"),
        ("local_max_steps", "local_max_steps"),
        ("ue_clustering", "ue_clustering"),
    ]:
        assert c["twin"][key] == getattr(s, field), key
    for key in ("n_models", "twin_steps", "commercial_steps", "batch_snapshots"):
        assert c["train"][key] == getattr(t, key), key
    assert {f.name for f in dataclasses.fields(SweepConfig)} >= {"n_snapshots", "areas"}


def test_user_file_overrides_and_keeps_other_defaults(tmp_path):
    p = _toml(tmp_path, '[twin]\nsnapshots = 64\nareas = ["rural"]\n[field]\ngap = 2\n')
    c = load_config(p)
    d = default_config()
    assert c["twin"]["snapshots"] == 64 and c["twin"]["areas"] == ["rural"]
    assert c["twin"]["n_sites"] == d["twin"]["n_sites"]
    assert c["field"]["gap"] == 2.0 and isinstance(c["field"]["gap"], float)  # int -> float
    assert c["run"] == d["run"]


def test_flags_override_toml(tmp_path):
    c = load_config(_toml(tmp_path, "[twin]\nsnapshots = 64\nn_sites = 19\n"))
    sec = apply_overrides(c, "twin", {"snapshots": 8, "n_sites": None, "areas": ["metro"]})
    assert sec["snapshots"] == 8  # flag beats TOML
    assert sec["n_sites"] == 19  # flag not given: TOML stays
    assert sec["areas"] == ["metro"]
    assert c["twin"]["snapshots"] == 64  # input unchanged


@pytest.mark.parametrize(
    "text, words",
    [
        ("[twin]\nsnapshot = 3\n", ["snapshot", "[twin]", "snapshots"]),
        ("[twins]\nsnapshots = 3\n", ["[twins]", "unknown section"]),
        ("[twin]\nsnapshots = 'many'\n", ["snapshots", "int"]),
        ("[twin]\nareas = 'metro'\n", ["areas", "list"]),
        ("[bench]\nsmall = 1\n", ["small", "bool"]),
        ("[twin\n", ["invalid TOML"]),
    ],
)
def test_bad_toml_names_the_problem(tmp_path, text, words):
    p = _toml(tmp_path, text)
    with pytest.raises(ConfigError) as e:
        load_config(p)
    for w in words:
        assert w in str(e.value)
    assert str(p) in str(e.value)


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.toml")


def test_unknown_override_key():
    with pytest.raises(ConfigError, match="'bogus'"):
        apply_overrides(default_config(), "twin", {"bogus": 1})
    with pytest.raises(ConfigError, match="unknown section"):
        merge(default_config(), {"nope": {}})


# --------------------------------------------------------------------------- run metadata
def test_write_result_records_versions_device_and_time(tmp_path):
    import jax

    t0 = time.perf_counter()
    res = {"mape": np.float32(0.25), "curve": np.arange(3), "bad": float("nan"), "nested": {"x": 1}}
    path = tmp_path / "sub" / "demo.json"
    rec = write_result(path, res, config={"small": True, "out": tmp_path}, seed=3, t0=t0)
    loaded = json.loads(path.read_text())  # strict JSON (NaN became null)
    assert loaded == rec
    assert loaded["experiment"] == "demo" and loaded["seed"] == 3
    assert loaded["versions"]["jax"] == jax.__version__
    assert loaded["versions"]["numpy"] == np.__version__
    assert loaded["machine"]["devices"] == [str(d) for d in jax.devices()]
    assert loaded["machine"]["jax_backend"] == jax.default_backend()
    assert loaded["machine"]["cpu_count"] >= 1 and loaded["machine"]["cpu_model"]
    assert 0.0 <= loaded["wall_time_s"] < 60.0
    assert loaded["git_commit"] is None or len(loaded["git_commit"].split("+")[0]) == 40
    assert loaded["config"] == {"small": True, "out": str(tmp_path)}
    assert loaded["results"] == {"mape": 0.25, "curve": [0, 1, 2], "bad": None, "nested": {"x": 1}}
    assert not path.with_suffix(".json.tmp").exists()


def test_result_names_the_commit_the_run_loaded(tmp_path, monkeypatch):
    """A run that outlives a commit records the commit it loaded, and the later one apart."""
    import experiments.meta as meta

    monkeypatch.setattr(meta, "LOADED_COMMIT", "a" * 40)
    monkeypatch.setattr(meta, "git_commit", lambda repo=None: "b" * 40)
    rec = write_result(tmp_path / "r.json", {}, config={}, seed=0, t0=time.perf_counter())
    assert rec["git_commit"] == "a" * 40 and rec["git_commit_at_finish"] == "b" * 40
    monkeypatch.setattr(meta, "git_commit", lambda repo=None: "a" * 40)
    rec = write_result(tmp_path / "r.json", {}, config={}, seed=0, t0=time.perf_counter())
    assert rec["git_commit"] == "a" * 40 and "git_commit_at_finish" not in rec


def test_package_versions_absent_package():
    v = package_versions(("numpy", "surely-not-installed-pkg"))
    assert v["numpy"] == np.__version__ and v["surely-not-installed-pkg"] is None


def test_to_jsonable_rejects_objects():
    assert to_jsonable({"a": (1, math.inf)}) == {"a": [1, None]}
    with pytest.raises(TypeError, match="object"):
        to_jsonable({"a": object()})
