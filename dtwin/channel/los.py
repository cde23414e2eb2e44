"""LOS probability of TR 38.901 clause 7.4.2 (Table 7.4.2-1)."""

from __future__ import annotations

import equinox as eqx
from jaxtyping import Array, ArrayLike, Float

from ._scenario import AbstractScenario
from ._validate import (
    as_float,
    broadcast_shape,
    check_nonnegative,
    check_positive,
    check_scenario,
    result,
)


def los_probability(
    scenario: AbstractScenario, distance_2d_out_m: ArrayLike, h_ut_m: ArrayLike
) -> Float[Array, "..."]:
    """Probability that a link is LOS, TR 38.901 Table 7.4.2-1.

    * UMa: 1 for ``d <= 18 m``, else ``[18/d + exp(-d/63)(1 - 18/d)] [1 + C'(h_UT) 5/4
      (d/100)^3 exp(-d/150)]`` with ``C' = ((h_UT - 13)/10)^1.5`` for ``13 < h_UT <= 23 m``
      (0 below; ``h_UT > 23`` is treated as 23). For tall UTs this product slightly exceeds 1
      just beyond 18 m; it is clipped to 1 here (Sionna does not clip).
    * UMi-Street Canyon: 1 for ``d <= 18 m``, else ``18/d + exp(-d/36)(1 - 18/d)``.
    * RMa: 1 for ``d <= 10 m``, else ``exp(-(d - 10)/1000)``.
    * InH-Office mixed: 1 for ``d <= 1.2 m``, ``exp(-(d - 1.2)/4.7)`` for ``d < 6.5 m``, else
      ``0.32 exp(-(d - 6.5)/32.6)`` (open office with ``InHOffice(office="open")``).

    Args:
        scenario: a scenario pytree.
        distance_2d_out_m: outdoor part of the horizontal BS-UT distance (m), >= 0 (for InH
            the full 2D distance).
        h_ut_m: UT height (m), > 0 (used by UMa only).

    Returns:
        Probability in [0, 1], broadcast shape of the inputs.
    """
    check_scenario(scenario)
    d = check_nonnegative("distance_2d_out_m", as_float("distance_2d_out_m", distance_2d_out_m))
    h = check_positive("h_ut_m", as_float("h_ut_m", h_ut_m))
    shape = broadcast_shape(distance_2d_out_m=d, h_ut_m=h)
    return _los_core(scenario, d, h, shape)


@eqx.filter_jit
def _los_core(scenario, d, h, shape):
    """Compiled body of :func:`los_probability`."""
    return result(scenario._los_probability(d, h), shape)
