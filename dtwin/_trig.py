"""Vectorisable float32 sine, cosine, arctangent and angle wrapping for the per-link hot paths.

XLA's CPU backend evaluates ``sin``, ``cos``, ``tan``, ``atan``/``atan2`` and ``fmod`` with one
scalar library call per element (10-25 ns each on the 2-core machine the sweep targets, against
~1 ns for ``exp``/``log``, which it vectorises). The twin evaluates several of them on every
UE-cell link of every snapshot, where they dominated the sweep's run time. The functions here are
the Cephes single-precision polynomial approximations (S. L. Moshier, *Methods and Programs for
Mathematical Functions*, 1989: ``sinf``, ``cosf``, ``atanf``) written as element-wise
``jnp`` arithmetic and selects, which XLA fuses and vectorises. They agree with the library
functions to a few float32 ulps (tested in ``tests/dtwin/test_trig.py``), are differentiable (the
derivative of the polynomial; selects route gradients without NaNs) and work on any backend.

Range reduction is Cody-Waite with a three-part π/2, accurate for ``|x|`` up to ~1e4 rad, far
beyond the angles used here (a few π).
"""

from __future__ import annotations

import math

import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float

# π/2 split into three parts whose first two have few significant bits (Cody-Waite)
_PIO2_1 = 1.5703125
_PIO2_2 = 4.837512969970703125e-4
_PIO2_3 = 7.549789954891882e-8
_TAN_3PI_8 = 2.414213562373095
_TAN_PI_8 = 0.4142135623730950


def _sin_poly(r, z):
    return ((-1.9515295891e-4 * z + 8.3321608736e-3) * z - 1.6666654611e-1) * z * r + r


def _cos_poly(z):
    return (
        ((2.443315711809948e-5 * z - 1.388731625493765e-3) * z + 4.166664568298827e-2) * (z * z)
        - 0.5 * z
        + 1.0
    )


def _reduce(x):
    n = jnp.round(x * (2.0 / math.pi))
    r = ((x - n * _PIO2_1) - n * _PIO2_2) - n * _PIO2_3  # |r| <= π/4
    return r, n.astype(jnp.int32) & 3  # quadrant n mod 4 (two's complement: also for n < 0)


def sin_cos(x: Float[ArrayLike, "..."]) -> tuple[Float[Array, "..."], Float[Array, "..."]]:
    """``(sin x, cos x)`` of an angle in radians, sharing one range reduction.

    With ``x = n π/2 + r``, ``|r| <= π/4``: ``(sin x, cos x)`` is ``(s, c)``, ``(c, -s)``,
    ``(-s, -c)``, ``(-c, s)`` for ``n mod 4 = 0..3``, where ``s, c`` are the polynomials at ``r``.
    """
    x = jnp.asarray(x, jnp.float32)
    r, q = _reduce(x)
    z = r * r
    s, c = _sin_poly(r, z), _cos_poly(z)
    odd = (q & 1) == 1
    sin_x = jnp.where(odd, c, s)
    cos_x = jnp.where(odd, s, c)
    sin_x = jnp.where(q >= 2, -sin_x, sin_x)
    cos_x = jnp.where((q == 1) | (q == 2), -cos_x, cos_x)
    return sin_x, cos_x


def cos(x: Float[ArrayLike, "..."]) -> Float[Array, "..."]:
    """``cos x`` of an angle in radians."""
    return sin_cos(x)[1]


def sin(x: Float[ArrayLike, "..."]) -> Float[Array, "..."]:
    """``sin x`` of an angle in radians."""
    return sin_cos(x)[0]


def arctan(x: Float[ArrayLike, "..."]) -> Float[Array, "..."]:
    """``arctan x`` in radians, in [-π/2, π/2] (``±inf`` maps to ``±π/2``)."""
    x = jnp.asarray(x, jnp.float32)
    a = jnp.abs(x)
    big = a > _TAN_3PI_8
    mid = (a > _TAN_PI_8) & ~big
    # the branches not taken see a harmless argument: no 1/0 or inf/inf (NaN-free gradients)
    a_big = jnp.where(big, a, 1.0)
    a_mid = jnp.where(mid, a, 1.0)
    t = jnp.where(big, -1.0 / a_big, jnp.where(mid, (a_mid - 1.0) / (a_mid + 1.0), a))
    y0 = jnp.where(big, 0.5 * math.pi, jnp.where(mid, 0.25 * math.pi, 0.0))
    z = t * t
    y = y0 + (((8.05374449538e-2 * z - 1.38776856032e-1) * z + 1.99777106478e-1) * z
              - 3.33329491539e-1) * z * t + t  # fmt: skip
    return jnp.where(x < 0.0, -y, y)


def atan2_deg(y: Float[ArrayLike, "..."], x: Float[ArrayLike, "..."]) -> Float[Array, "..."]:
    """``atan2(y, x)`` in degrees, in (-180, 180] (``atan2(±0, x < 0) = 180``; ``(0, 0) -> 0``).

    From one :func:`arctan` of a ratio in [0, 1]; differentiable wherever ``(x, y) ≠ 0``.
    """
    x = jnp.asarray(x, jnp.float32)
    y = jnp.asarray(y, jnp.float32)
    ax, ay = jnp.abs(x), jnp.abs(y)
    steep = ay > ax
    hi, lo = jnp.where(steep, ay, ax), jnp.where(steep, ax, ay)
    a = jnp.degrees(arctan(lo / jnp.where(hi > 0.0, hi, 1.0)))  # [0, 45]
    a = jnp.where(steep, 90.0 - a, a)  # first quadrant
    a = jnp.where(x < 0.0, 180.0 - a, a)
    return jnp.where(y < 0.0, -a, a)


def wrap_angle_deg(angle_deg: Float[ArrayLike, "..."]) -> Float[Array, "..."]:
    """Map an angle (deg) to (-180, 180] (same as ``180 - mod(180 - a, 360)``, without ``fmod``)."""
    a = jnp.asarray(angle_deg, jnp.float32)
    return a - 360.0 * jnp.ceil((a - 180.0) / 360.0)
