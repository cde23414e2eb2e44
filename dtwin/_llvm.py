"""Locate a libLLVM >= 17 for Dr.Jit's CPU (LLVM) backend, which Sionna RT uses.

Dr.Jit reads ``DRJIT_LIBLLVM_PATH`` when it is first imported. Older system LLVMs
(e.g. Debian 12's LLVM 15) load but crash at run time ("Cannot select: fmaximum"),
so we look for version 17 or newer explicitly and fail with a message that says
what to install when there is none.
"""

from __future__ import annotations

import glob
import os
import re

_MIN_VERSION = 17

_PATTERNS = (
    "/usr/lib/x86_64-linux-gnu/libLLVM-{v}.so*",
    "/usr/lib/x86_64-linux-gnu/libLLVM.so.{v}*",
    "/usr/lib/aarch64-linux-gnu/libLLVM-{v}.so*",
    "/usr/lib/aarch64-linux-gnu/libLLVM.so.{v}*",
    "/usr/lib/llvm-{v}/lib/libLLVM*.so*",
    "/usr/lib64/libLLVM-{v}.so*",
    "/usr/lib64/libLLVM.so.{v}*",
    "/opt/homebrew/opt/llvm@{v}/lib/libLLVM.dylib",
    "/usr/local/opt/llvm@{v}/lib/libLLVM.dylib",
)

LLVM_HELP = (
    "Sionna RT's CPU backend (Dr.Jit LLVM) needs libLLVM >= 17, and none was found. "
    "On Debian/Ubuntu run 'apt-get install libllvm19' (the project's './run' does this where it "
    "may), on macOS 'brew install llvm', or point DRJIT_LIBLLVM_PATH at a libLLVM >= 17 shared "
    "library."
)


def _version_of(path: str) -> int | None:
    m = re.search(r"(?:LLVM-|LLVM\.so\.|llvm-|llvm@)(\d+)", path)
    return int(m.group(1)) if m else None


def find_libllvm() -> str | None:
    """Return the path of the newest libLLVM >= 17 on this machine, or ``None``."""
    env = os.environ.get("DRJIT_LIBLLVM_PATH")
    if env and os.path.exists(env):
        v = _version_of(env)
        if v is None or v >= _MIN_VERSION:
            return env
    for v in range(25, _MIN_VERSION - 1, -1):
        for pat in _PATTERNS:
            hits = sorted(glob.glob(pat.format(v=v)))
            if hits:
                return hits[0]
    return None


def configure_llvm() -> str:
    """Set ``DRJIT_LIBLLVM_PATH`` to a suitable libLLVM before Dr.Jit is imported.

    Returns:
        The path that was set.

    Raises:
        RuntimeError: if no libLLVM >= 17 exists, with installation instructions.
    """
    path = find_libllvm()
    if path is None:
        raise RuntimeError(LLVM_HELP)
    os.environ["DRJIT_LIBLLVM_PATH"] = path
    return path


def import_sionna_rt():
    """Configure LLVM, then import and return ``sionna.rt`` (CPU variant by default).

    Raises:
        RuntimeError: with a clear message if libLLVM >= 17 or sionna-rt is missing.
    """
    configure_llvm()
    try:
        import mitsuba as mi  # noqa: F401
        import sionna.rt as rt
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise RuntimeError(
            f"sionna-rt could not be imported ({e}); install the project with './run setup'."
        ) from e
    return rt
