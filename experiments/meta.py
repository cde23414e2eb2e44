"""Run metadata shared by every experiment's JSON: configuration, seed, versions, machine, time.

Every experiment ends with one call::

    t0 = time.perf_counter()
    ...
    write_result(out / "name.json", results, config=vars(args), seed=args.seed, t0=t0)

which writes ``{"experiment", "config", "seed", "machine", "versions", "git_commit",
"wall_time_s", "finished_utc", "results"}`` (``git_commit`` is the commit the process loaded;
``git_commit_at_finish`` is added when the checkout moved during the run). Values are made
JSON-safe on the way (numpy/JAX scalars and arrays to numbers and lists, ``Path`` to str,
NaN/inf to ``null``), so the file is strict JSON.
"""

from __future__ import annotations

import datetime
import importlib.metadata
import json
import math
import os
import platform
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

PACKAGES: tuple[str, ...] = (
    "jax",
    "jaxlib",
    "equinox",
    "optax",
    "optimistix",
    "orbax-checkpoint",
    "numpy",
    "sionna-rt",
    "sionna",
    "mitsuba",
    "drjit",
    "torch",
    "pyarrow",
    "sim2real-net",
)
"""Distributions whose versions are recorded (absent ones are recorded as ``None``)."""


def package_versions(packages: tuple[str, ...] = PACKAGES) -> dict[str, str | None]:
    """Installed version of each distribution, ``None`` where it is not installed."""
    out: dict[str, str | None] = {}
    for name in packages:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def _cpu_model() -> str:
    """The CPU model name (``/proc/cpuinfo`` on Linux, ``platform.processor()`` elsewhere)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def git_commit(repo: str | os.PathLike | None = None) -> str | None:
    """The checkout's ``HEAD`` commit (with ``+dirty`` when files are modified), or ``None``."""
    repo = Path(__file__).resolve().parents[1] if repo is None else Path(repo)
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, timeout=10
        )
        if head.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=repo,
            capture_output=True,
            text=True,
            timeout=10,
        )
        return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.TimeoutExpired):
        return None


LOADED_COMMIT: str | None = git_commit()
"""`git_commit` when this module was imported, i.e. the code an experiment process loaded (one
``git`` call per process). A run that takes an hour can end after further commits; its JSON
names this commit, not the one at the end."""


def machine_info() -> dict[str, Any]:
    """Platform, Python, CPU model and core count, and the JAX backend and devices."""
    import jax

    devices = jax.devices()
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "jax_backend": jax.default_backend(),
        "devices": [str(d) for d in devices],
        "device_kinds": sorted({getattr(d, "device_kind", d.platform) for d in devices}),
    }


def to_jsonable(value: Any) -> Any:
    """Recursively convert ``value`` to strict-JSON types (NaN/inf become ``None``)."""
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if hasattr(value, "tolist") and hasattr(value, "dtype"):  # numpy / JAX arrays and scalars
        return to_jsonable(value.tolist())
    if hasattr(value, "item"):
        return to_jsonable(value.item())
    raise TypeError(f"to_jsonable: cannot convert a {type(value).__name__} to JSON")


def run_metadata(config: Mapping[str, Any], seed: int | None, t0: float) -> dict[str, Any]:
    """The metadata block of a result file.

    Args:
        config: the run's configuration (e.g. ``vars(args)``).
        seed: the PRNG seed (``None`` for deterministic runs without one).
        t0: ``time.perf_counter()`` at the start of the run.
    """
    meta = {
        "config": to_jsonable(dict(config)),
        "seed": seed,
        "machine": machine_info(),
        "versions": package_versions(),
        "git_commit": LOADED_COMMIT,
        "wall_time_s": time.perf_counter() - t0,
        "finished_utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
    now = git_commit()
    if now != LOADED_COMMIT:  # the checkout moved during the run: say so
        meta["git_commit_at_finish"] = now
    return meta


def write_result(
    path: str | os.PathLike,
    results: Mapping[str, Any],
    config: Mapping[str, Any],
    seed: int | None,
    t0: float,
) -> dict[str, Any]:
    """Write an experiment's JSON (metadata + results) atomically and return what was written.

    Args:
        path: the JSON file (``results/<experiment>.json``); its stem names the experiment.
        results: the experiment's numbers (nested dicts/lists of numbers and strings).
        config: the run's configuration.
        seed: the PRNG seed.
        t0: ``time.perf_counter()`` at the start of the run (wall time = now - t0).
    """
    path = Path(path)
    record = {"experiment": path.stem, **run_metadata(config, seed, t0)}
    record["results"] = to_jsonable(results)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(record, indent=2, allow_nan=False))
    os.replace(tmp, path)
    return record
