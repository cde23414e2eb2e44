"""Test-wide settings: CPU JAX, and where the optional shared data lives."""

import gc
import os
from pathlib import Path

import pytest

os.environ.setdefault("JAX_PLATFORMS", "cpu")

# The tests run tiny problems, where XLA's compile time dwarfs run time: compile with the CPU
# backend's cheap optimisation level (measured on the field-trial test: 6.0 -> 3.3 min, same
# numbers to the printed digits). Set before JAX initialises its backend; an XLA_FLAGS already
# set by the caller is kept and only extended. Export S2R_TEST_FULL_OPT=1 to compile as users do.
FAST_COMPILE_FLAGS = "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"
if not os.environ.get("S2R_TEST_FULL_OPT"):
    _flags = os.environ.get("XLA_FLAGS", "")
    if "xla_backend_optimization_level" not in _flags:
        os.environ["XLA_FLAGS"] = f"{_flags} {FAST_COMPILE_FLAGS}".strip()

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
    """Free a test module's compiled XLA programs when it ends.

    A worker otherwise keeps every program compiled by every module it ran (seen: 7-8 GB per
    worker late in the suite, 3-4.4 GB with this); the persistent compilation cache makes
    recompiling cheap.
    """
    yield
    import jax

    jax.clear_caches()
    gc.collect()


# Modules that take minutes, started first so that the two workers finish together: with
# `--dist loadfile --no-loadscope-reorder` (`./run test`) xdist hands out files in the order
# collected, and the field trial's module alone takes about as long as half the rest.
FIRST_MODULES = ("tests/test_field_trial.py", "tests/test_offline_eval.py")


def pytest_collection_modifyitems(config, items):
    rank = {path: i for i, path in enumerate(FIRST_MODULES)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(FIRST_MODULES)))
