"""Basic pathloss of TR 38.901 clause 7.4.1 (Table 7.4.1-1) for UMa, UMi, RMa and InH-Office.

Distances below a model's minimum (d_2D = 10 m outdoors, d_3D = 1 m for InH) are clipped to
that minimum inside the formula, so the pathloss is flat (zero gradient) below it. Sionna
(``sionna.phy.channel.tr38901``) does not clip; it avoids such distances when dropping UEs,
so both agree wherever the table is valid. Beyond the table's maximum distance the formulas
are extrapolated. The scenario's ``pathloss_offset_db`` is added to every result.

UMa's effective environment height: with ``key=None`` the deterministic ``h_E = 1 m`` option
is used; with a ``key`` it is drawn per link from Table 7.4.1-1 Note 1 (this is what Sionna
always does; for ``h_UT < 13 m`` the draw is 1 m with probability one, so the two coincide).
"""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from ._scenario import AbstractScenario
from ._validate import link_inputs, result


def pathloss_los_db(
    scenario: AbstractScenario,
    distance_2d_m: ArrayLike,
    h_bs_m: ArrayLike,
    h_ut_m: ArrayLike,
    carrier_hz: ArrayLike,
    *,
    key: PRNGKeyArray | None = None,
) -> Float[Array, "..."]:
    """LOS basic pathloss PL_LOS (dB), TR 38.901 Table 7.4.1-1.

    Args:
        scenario: a scenario pytree (``UMa()``, ``UMi()``, ``RMa()``, ``InHOffice()``).
        distance_2d_m: BS-UT horizontal distance d_2D (m), >= 0.
        h_bs_m: BS antenna height (m), > 0.
        h_ut_m: UT antenna height (m), > 0.
        carrier_hz: carrier frequency (Hz) inside the scenario's validity range.
        key: optional PRNG key; UMa only: draw ``h_E`` per Note 1 instead of 1 m.

    Returns:
        Pathloss (dB), broadcast shape of the inputs.
    """
    shape, d, hb, hu, fc, _ = link_inputs(scenario, distance_2d_m, h_bs_m, h_ut_m, carrier_hz)
    return _pathloss_core(scenario, d, hb, hu, fc, "los", key, shape)


def _nlos_from_los(scenario, pl_los, d, hb, hu, fc):
    return jnp.maximum(pl_los, scenario._pathloss_nlos_prime_db(d, hb, hu, fc))


@eqx.filter_jit
def _pathloss_core(scenario, d, hb, hu, fc, los_weight, key, shape):
    """Compiled body: ``los_weight`` None -> LOS only; 0 -> NLOS; else the weighted mix."""
    pl_los = scenario._pathloss_los_db(d, hb, hu, fc, key)
    if isinstance(los_weight, str):  # "los" / "nlos"
        pl = pl_los if los_weight == "los" else _nlos_from_los(scenario, pl_los, d, hb, hu, fc)
    else:
        pl_nlos = _nlos_from_los(scenario, pl_los, d, hb, hu, fc)
        pl = los_weight * pl_los + (1.0 - los_weight) * pl_nlos
    return result(pl + scenario.pathloss_offset_db, shape)


def pathloss_nlos_db(
    scenario: AbstractScenario,
    distance_2d_m: ArrayLike,
    h_bs_m: ArrayLike,
    h_ut_m: ArrayLike,
    carrier_hz: ArrayLike,
    *,
    key: PRNGKeyArray | None = None,
) -> Float[Array, "..."]:
    """NLOS basic pathloss ``max(PL_LOS, PL'_NLOS)`` (dB), TR 38.901 Table 7.4.1-1.

    Arguments as :func:`pathloss_los_db`.
    """
    shape, d, hb, hu, fc, _ = link_inputs(scenario, distance_2d_m, h_bs_m, h_ut_m, carrier_hz)
    return _pathloss_core(scenario, d, hb, hu, fc, "nlos", key, shape)


def pathloss_db(
    scenario: AbstractScenario,
    distance_2d_m: ArrayLike,
    h_bs_m: ArrayLike,
    h_ut_m: ArrayLike,
    carrier_hz: ArrayLike,
    los: ArrayLike,
    *,
    key: PRNGKeyArray | None = None,
) -> Float[Array, "..."]:
    """Basic pathloss (dB) of TR 38.901 clause 7.4.1 for the given LOS state.

    ``los * PL_LOS + (1 - los) * PL_NLOS``: exact for a boolean / 0-1 ``los`` and a
    differentiable interpolation for a soft LOS weight in [0, 1]. For an indoor (O2I) UT pass
    the LOS state of the outdoor part of the link; O2I loss is added separately
    (:func:`dtwin.channel.o2i_loss_db`).

    Args:
        los: bool or float array in [0, 1] (1 = LOS), broadcastable with the other inputs.
        others: as :func:`pathloss_los_db`.
    """
    shape, d, hb, hu, fc, c = link_inputs(
        scenario, distance_2d_m, h_bs_m, h_ut_m, carrier_hz, los=los
    )
    return _pathloss_core(scenario, d, hb, hu, fc, c["los"], key, shape)
