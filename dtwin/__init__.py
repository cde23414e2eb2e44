"""dtwin: a differentiable multi-cell network Digital Twin in JAX.

Public API is re-exported here; see the submodules for details.
"""

from . import schema
from ._llvm import configure_llvm, find_libllvm

__all__ = ["schema", "configure_llvm", "find_libllvm"]
