"""Outdoor-to-indoor building penetration loss, TR 38.901 clause 7.4.3.1.

Applies to UMa and UMi (low- and high-loss models) and RMa (low-loss model only, clause
7.4.3.1); InH UEs are indoors by definition and have no O2I loss. The indoor distance
``d_2D-in`` is drawn by the UE dropping (min of two uniforms on [0, 25] m for UMa/UMi,
[0, 10] m for RMa), not here. The O2I random term is independent per UE (no spatial
consistency).
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from ._validate import as_condition, as_float, broadcast_shape, check_in_range, check_nonnegative

_O2I_MIN_HZ = 0.5e9
_O2I_MAX_HZ = 100e9
_LOW_LOSS_STD_DB = 4.4
_HIGH_LOSS_STD_DB = 6.5
_INDOOR_LOSS_DB_PER_M = 0.5


def _material_losses_db(carrier_ghz: Array) -> tuple[Array, Array, Array]:
    """Table 7.4.3-1: standard glass, IRR glass and concrete penetration losses (dB)."""
    glass = 2.0 + 0.2 * carrier_ghz
    irr_glass = 23.0 + 0.3 * carrier_ghz
    concrete = 5.0 + 4.0 * carrier_ghz
    return glass, irr_glass, concrete


def _building_loss_db(carrier_hz: Array, high: Array) -> Array:
    glass, irr, concrete = _material_losses_db(carrier_hz / 1e9)
    low_db = 5.0 - 10.0 * jnp.log10(
        0.3 * 10.0 ** (-glass / 10.0) + 0.7 * 10.0 ** (-concrete / 10.0)
    )
    high_db = 5.0 - 10.0 * jnp.log10(0.7 * 10.0 ** (-irr / 10.0) + 0.3 * 10.0 ** (-concrete / 10.0))
    return high * high_db + (1.0 - high) * low_db


def o2i_building_loss_db(carrier_hz: ArrayLike, high_loss: ArrayLike) -> Float[Array, "..."]:
    """Deterministic through-wall loss PL_tw (dB), TR 38.901 Table 7.4.3-2.

    Low loss: ``5 - 10 log10(0.3 10^(-L_glass/10) + 0.7 10^(-L_concrete/10))``; high loss:
    ``5 - 10 log10(0.7 10^(-L_IRRglass/10) + 0.3 10^(-L_concrete/10))`` with Table 7.4.3-1
    ``L_glass = 2 + 0.2 f``, ``L_IRRglass = 23 + 0.3 f``, ``L_concrete = 5 + 4 f`` (f in GHz).

    Args:
        carrier_hz: carrier frequency (Hz), 0.5-100 GHz.
        high_loss: bool or [0, 1] weight (1 = high-loss building).
    """
    fc = check_in_range(
        "carrier_hz",
        as_float("carrier_hz", carrier_hz),
        _O2I_MIN_HZ,
        _O2I_MAX_HZ,
        "Hz",
        "the TR 38.901 O2I model",
    )
    high = as_condition("high_loss", high_loss)
    shape = broadcast_shape(carrier_hz=fc, high_loss=high)
    return jnp.broadcast_to(_building_loss_db(fc, high), shape)


def o2i_loss_db(
    key: PRNGKeyArray,
    carrier_hz: ArrayLike,
    distance_2d_in_m: ArrayLike,
    high_loss: ArrayLike,
) -> Float[Array, "..."]:
    """O2I loss ``PL_tw + 0.5 d_2D-in + N(0, sigma_P^2)`` (dB), TR 38.901 Table 7.4.3-2.

    ``sigma_P`` is 4.4 dB (low loss) or 6.5 dB (high loss). Add it to the basic pathloss of
    indoor UEs only (the caller masks outdoor UEs).

    Args:
        key: PRNG key for the Gaussian term (one independent draw per element).
        carrier_hz: carrier frequency (Hz), 0.5-100 GHz.
        distance_2d_in_m: indoor 2D distance (m), >= 0.
        high_loss: bool or [0, 1] weight (1 = high-loss building).

    Returns:
        Loss (dB), broadcast shape of the inputs.
    """
    fc = check_in_range(
        "carrier_hz",
        as_float("carrier_hz", carrier_hz),
        _O2I_MIN_HZ,
        _O2I_MAX_HZ,
        "Hz",
        "the TR 38.901 O2I model",
    )
    d_in = check_nonnegative("distance_2d_in_m", as_float("distance_2d_in_m", distance_2d_in_m))
    high = as_condition("high_loss", high_loss)
    shape = broadcast_shape(carrier_hz=fc, distance_2d_in_m=d_in, high_loss=high)
    return _o2i_core(key, fc, d_in, high, shape)


@eqx.filter_jit
def _o2i_core(key, fc, d_in, high, shape):
    """Compiled body of :func:`o2i_loss_db`."""
    std = high * _HIGH_LOSS_STD_DB + (1.0 - high) * _LOW_LOSS_STD_DB
    noise = jax.random.normal(key, shape, dtype=jnp.result_type(d_in.dtype, fc.dtype))
    loss = _building_loss_db(fc, high) + _INDOOR_LOSS_DB_PER_M * d_in + std * noise
    return jnp.broadcast_to(loss, shape)


def o2i_legacy_loss_db(distance_2d_in_m: ArrayLike) -> Float[Array, "..."]:
    """Backward-compatible below-6 GHz O2I loss ``20 + 0.5 d_2D-in`` (dB), TR 38.901 7.4.3.1.

    The single-frequency model of Table 7.4.3-3 (inherited from TR 36.873): 20 dB wall loss,
    0.5 dB/m indoor loss, no random term. Sionna uses it for UMa/UMi below 6 GHz.
    """
    d_in = check_nonnegative("distance_2d_in_m", as_float("distance_2d_in_m", distance_2d_in_m))
    return 20.0 + _INDOOR_LOSS_DB_PER_M * d_in
