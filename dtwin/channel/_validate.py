"""Input checks for the public entry points of :mod:`dtwin.channel`.

Checks run eagerly (raising :class:`ValueError`) when the values are concrete, and are
compiled into the computation with :func:`equinox.error_if` when the values are traced
(under ``jit``/``vmap``/``grad``), so that a bad value still stops the program instead of
silently producing a wrong pathloss. Shape checks are static and always raise
:class:`ValueError`.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array

from ._scenario import AbstractScenario


def _is_traced(x) -> bool:
    """True under ``jit``/``vmap``/``grad`` tracing (values unknown until run time)."""
    return isinstance(x, jax.core.Tracer)


def _real_dtype(dtype) -> bool:
    return bool(
        jnp.issubdtype(dtype, jnp.floating)
        or jnp.issubdtype(dtype, jnp.integer)
        or dtype == jnp.bool_
    )


def as_float(name: str, x) -> Array:
    """Convert ``x`` to a floating array (float32 unless already floating), naming ``name``."""
    if _is_traced(x):
        if not _real_dtype(x.dtype):
            raise ValueError(f"{name} must be a real number array, got dtype {x.dtype}.")
        return x if jnp.issubdtype(x.dtype, jnp.floating) else x.astype(jnp.float32)
    if isinstance(x, jax.Array) and jnp.issubdtype(x.dtype, jnp.floating):
        return x
    try:
        arr = np.asarray(x)
    except Exception as e:  # pragma: no cover - exotic inputs
        raise ValueError(f"{name} must be array-like, got {type(x).__name__}.") from e
    if arr.dtype == object or not _real_dtype(arr.dtype):
        raise ValueError(f"{name} must be a real number array, got dtype {arr.dtype}.")
    keep64 = arr.dtype == np.float64 and jax.config.jax_enable_x64
    return jnp.asarray(arr, dtype=np.float64 if keep64 else np.float32)


def as_condition(name: str, x) -> Array:
    """Convert a bool / 0-1 float condition (e.g. ``los``) to a float array in [0, 1]."""
    if _is_traced(x):
        if x.dtype == jnp.bool_:
            return x.astype(jnp.float32)
        x = as_float(name, x)
        return eqx.error_if(x, (x < 0) | (x > 1) | jnp.isnan(x), f"{name} must lie in [0, 1].")
    arr = np.asarray(x)
    if arr.dtype == np.bool_:
        return jnp.asarray(arr, dtype=jnp.float32)
    out = as_float(name, x)
    a = arr.astype(np.float64) if arr.dtype != object else arr
    if np.any(~((a >= 0) & (a <= 1))):
        raise ValueError(
            f"{name} must be boolean or lie in [0, 1] (1 = true); got values in "
            f"[{np.nanmin(a):g}, {np.nanmax(a):g}] or NaN."
        )
    return out


def check_nonnegative(name: str, x: Array, unit: str = "m") -> Array:
    """Return ``x`` unchanged after checking ``x >= 0`` (and not NaN)."""
    msg = f"{name} must be non-negative ({unit})"
    if _is_traced(x):
        return eqx.error_if(x, ~(x >= 0), msg + ".")
    a = np.asarray(x)
    bad = ~(a >= 0)
    if np.any(bad):
        raise ValueError(
            f"{msg}; got {a[bad].ravel()[0]!r} at flat index {np.flatnonzero(bad)[0]}."
        )
    return x


def check_positive(name: str, x: Array, unit: str = "m") -> Array:
    """Return ``x`` unchanged after checking ``x > 0`` (and not NaN)."""
    msg = f"{name} must be positive ({unit})"
    if _is_traced(x):
        return eqx.error_if(x, ~(x > 0), msg + ".")
    a = np.asarray(x)
    bad = ~(a > 0)
    if np.any(bad):
        raise ValueError(
            f"{msg}; got {a[bad].ravel()[0]!r} at flat index {np.flatnonzero(bad)[0]}."
        )
    return x


def check_in_range(name: str, x: Array, low: float, high: float, unit: str, model: str) -> Array:
    """Return ``x`` unchanged after checking ``low <= x <= high``."""
    msg = f"{name} must lie in [{low:g}, {high:g}] {unit} for {model}"
    if _is_traced(x):
        return eqx.error_if(x, ~((x >= low) & (x <= high)), msg + ".")
    a = np.asarray(x)
    bad = ~((a >= low) & (a <= high))
    if np.any(bad):
        raise ValueError(f"{msg}; got {a[bad].ravel()[0]:g}.")
    return x


def broadcast_shape(**named: Array) -> tuple[int, ...]:
    """Common broadcast shape of the named arrays; ``ValueError`` naming them if incompatible."""
    try:
        return tuple(np.broadcast_shapes(*(jnp.shape(v) for v in named.values())))
    except ValueError:
        desc = ", ".join(f"{k} {tuple(jnp.shape(v))}" for k, v in named.items())
        raise ValueError(f"Shapes do not broadcast together: {desc}.") from None


def check_scenario(scenario) -> AbstractScenario:
    """Return ``scenario`` after checking it is a :class:`AbstractScenario`."""
    if not isinstance(scenario, AbstractScenario):
        raise ValueError(
            "scenario must be a dtwin.channel scenario (UMa(), UMi(), RMa(), InHOffice()), "
            f"got {type(scenario).__name__}."
        )
    return scenario


def link_inputs(
    scenario: AbstractScenario,
    distance_2d_m,
    h_bs_m,
    h_ut_m,
    carrier_hz,
    distance_name: str = "distance_2d_m",
    **conditions,
) -> tuple[tuple[int, ...], Array, Array, Array, Array, dict[str, Array]]:
    """Validate and convert the link arguments; return ``(shape, d, h_bs, h_ut, fc, conds)``.

    Raises:
        ValueError: negative/NaN distance, non-positive heights, carrier outside the scenario's
            validity range, a condition outside [0, 1], or shapes that do not broadcast.
    """
    check_scenario(scenario)
    d = check_nonnegative(distance_name, as_float(distance_name, distance_2d_m), "m")
    hb = check_positive("h_bs_m", as_float("h_bs_m", h_bs_m), "m")
    hu = check_positive("h_ut_m", as_float("h_ut_m", h_ut_m), "m")
    fc = as_float("carrier_hz", carrier_hz)
    fc = check_in_range(
        "carrier_hz",
        fc,
        scenario.min_carrier_hz,
        scenario.max_carrier_hz,
        "Hz",
        f"TR 38.901 {scenario.name}",
    )
    conds = {k: as_condition(k, v) for k, v in conditions.items()}
    shape = broadcast_shape(
        **{distance_name: d, "h_bs_m": hb, "h_ut_m": hu, "carrier_hz": fc}, **conds
    )
    return shape, d, hb, hu, fc, conds


def result(x: Array, shape: tuple[int, ...]) -> Array:
    """Broadcast an output to the inputs' common shape."""
    return jnp.broadcast_to(x, shape)
