"""Context of a cell or area that conditions UE behaviour: area type, density, indoor share, time.

The feature vector (``Context.to_features``) is what the conditional VAE (`dtwin.ue.cvae`) and the
demand predictor (`dtwin.ue.traffic`) are conditioned on:

====================  ======================================================================
index                 feature
====================  ======================================================================
0..3                  area type one-hot in the order of `AREA_TYPES`
4                     log10(1 + UE density per km^2) / 4 (1.0 at 10^4 UEs/km^2)
5                     indoor share, 0-1 (TR 38.901 Table 7.2-1 uses 0.8 for UMa/UMi, 0.5 RMa)
6, 7                  sin, cos of 2 pi hour / 24 (cyclic time of day)
8, 9                  sin, cos of 2 pi day_of_week / 7 (0 = Monday)
====================  ======================================================================
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

AREA_TYPES: tuple[str, ...] = ("metro", "urban", "suburban", "rural")
N_CONTEXT_FEATURES = 10


def _is_concrete(x) -> bool:
    return not isinstance(x, jax.core.Tracer)


class Context(eqx.Module):
    """Context of one cell/area at one time.

    Attributes:
        area_type: one of `AREA_TYPES` (static).
        ue_density_per_km2: UE density in UEs per km^2, >= 0.
        indoor_ratio: share of indoor UEs, in [0, 1].
        hour: hour of day (local time) in [0, 24); fractional hours allowed.
        day_of_week: 0 = Monday ... 6 = Sunday (may be fractional for interpolation), in [0, 7).

    Raises:
        ValueError: on construction with concrete values that are NaN or out of range; the
            message names the field.
    """

    area_type: str = eqx.field(static=True)
    ue_density_per_km2: Float[Array, ""] = eqx.field(
        converter=lambda x: jnp.asarray(x, jnp.float32)
    )
    indoor_ratio: Float[Array, ""] = eqx.field(converter=lambda x: jnp.asarray(x, jnp.float32))
    hour: Float[Array, ""] = eqx.field(converter=lambda x: jnp.asarray(x, jnp.float32))
    day_of_week: Float[Array, ""] = eqx.field(
        default=0.0, converter=lambda x: jnp.asarray(x, jnp.float32)
    )

    def __check_init__(self):
        if self.area_type not in AREA_TYPES:
            raise ValueError(
                f"Context.area_type: unknown area type {self.area_type!r}; expected one of "
                f"{AREA_TYPES}"
            )
        checks = (
            ("ue_density_per_km2", 0.0, math.inf, "must be >= 0 (UEs per km^2)"),
            ("indoor_ratio", 0.0, 1.0, "must be in [0, 1]"),
            ("hour", 0.0, 24.0 - 1e-6, "must be an hour of day in [0, 24) (0-23)"),
            ("day_of_week", 0.0, 7.0 - 1e-6, "must be in [0, 7) (0 = Monday)"),
        )
        for name, low, high, what in checks:
            value = getattr(self, name)
            if not _is_concrete(value):
                continue
            v = np.asarray(value)
            if np.any(np.isnan(v)):
                raise ValueError(f"Context.{name} is NaN")
            if np.any(v < low) or np.any(v > high):
                raise ValueError(f"Context.{name}={v.tolist()} {what}")

    def to_features(self) -> Float[Array, " features"]:
        """Feature vector of length `N_CONTEXT_FEATURES` (see the module docstring), float32."""
        return context_features(
            AREA_TYPES.index(self.area_type),
            self.ue_density_per_km2,
            self.indoor_ratio,
            self.hour,
            self.day_of_week,
        )


def context_features(
    area_index, ue_density_per_km2, indoor_ratio, hour, day_of_week
) -> Float[Array, " features"]:
    """Functional form of `Context.to_features` on (possibly traced, vmapped) scalars.

    Args:
        area_index: integer index into `AREA_TYPES`.
        ue_density_per_km2: UE density per km^2.
        indoor_ratio: indoor share, 0-1.
        hour: hour of day, [0, 24).
        day_of_week: 0 = Monday, [0, 7).

    Returns:
        Float[Array, " 10"] feature vector.
    """
    one_hot = jax.nn.one_hot(area_index, len(AREA_TYPES), dtype=jnp.float32)
    h = 2.0 * jnp.pi * jnp.asarray(hour, jnp.float32) / 24.0
    d = 2.0 * jnp.pi * jnp.asarray(day_of_week, jnp.float32) / 7.0
    rest = jnp.stack(
        [
            jnp.log10(1.0 + jnp.asarray(ue_density_per_km2, jnp.float32)) / 4.0,
            jnp.asarray(indoor_ratio, jnp.float32),
            jnp.sin(h),
            jnp.cos(h),
            jnp.sin(d),
            jnp.cos(d),
        ]
    )
    return jnp.concatenate([one_hot, rest])


def stack_contexts(contexts: list[Context]) -> Float[Array, "batch features"]:
    """Feature matrix of several contexts, one row each."""
    if len(contexts) == 0:
        raise ValueError("stack_contexts: empty list of contexts")
    return jnp.stack([c.to_features() for c in contexts])
