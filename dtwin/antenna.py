"""BS antenna: TR 38.901 element pattern and a tilted vertical column (TR 38.901 clause 7.3).

Angles are in degrees. ``zenith_deg`` is the zenith angle (90° = horizon, > 90° below it) and
``azimuth_deg`` the azimuth relative to the antenna boresight, both in the *global* frame of the
sector (boresight along the local x axis). Positive tilts are downtilts.
"""

from __future__ import annotations

import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float

from . import _trig

__all__ = ["element_gain_dbi", "array_gain_dbi", "rotate_downtilt_deg"]

_HPBW_DEG = 65.0  # Table 7.3-1: θ_3dB = φ_3dB = 65°
_SLA_V_DB = 30.0  # Table 7.3-1: side-lobe attenuation, vertical
_A_MAX_DB = 30.0  # Table 7.3-1: front-back ratio
_G_MAX_DBI = 8.0  # Table 7.3-1: maximum directional gain of an element
_ARRAY_FACTOR_FLOOR = 1e-6  # -60 dB, keeps nulls finite and differentiable


def element_gain_dbi(zenith_deg: ArrayLike, azimuth_deg: ArrayLike) -> Float[Array, "..."]:
    """Radiation power pattern of one element, TR 38.901 Table 7.3-1 (dBi).

    ``A_V(θ) = −min(12((θ − 90°)/θ_3dB)², SLA_V)``, ``A_H(φ) = −min(12(φ/φ_3dB)², A_max)``,
    ``A(θ, φ) = −min(−(A_V + A_H), A_max) + G_max``, with θ_3dB = φ_3dB = 65°, SLA_V = 30 dB,
    A_max = 30 dB, G_max = 8 dBi. Angles are in the element's local frame (deg); the azimuth is
    wrapped to (-180°, 180°].
    """
    zenith_deg = jnp.asarray(zenith_deg, jnp.float32)
    azimuth_deg = jnp.asarray(azimuth_deg, jnp.float32)
    phi = _trig.wrap_angle_deg(azimuth_deg)
    a_v = -jnp.minimum(12.0 * jnp.square((zenith_deg - 90.0) / _HPBW_DEG), _SLA_V_DB)
    a_h = -jnp.minimum(12.0 * jnp.square(phi / _HPBW_DEG), _A_MAX_DB)
    return -jnp.minimum(-(a_v + a_h), _A_MAX_DB) + _G_MAX_DBI


def rotate_downtilt_deg(
    zenith_deg: ArrayLike, azimuth_deg: ArrayLike, mech_tilt_deg: ArrayLike
) -> tuple[Float[Array, "..."], Float[Array, "..."]]:
    """Global → local angles of a panel mechanically down-tilted by β (TR 38.901 eq. 7.1-7/7.1-8).

    With bearing α = 0 and slant γ = 0:
    ``θ' = arccos(cos β cos θ + sin β cos φ sin θ)``,
    ``φ' = arg(cos β sin θ cos φ − sin β cos θ + j sin θ sin φ)``.
    """
    th = jnp.radians(jnp.asarray(zenith_deg, jnp.float32))
    ph = jnp.radians(jnp.asarray(azimuth_deg, jnp.float32))
    b = jnp.radians(jnp.asarray(mech_tilt_deg, jnp.float32))
    cos_tp = jnp.cos(b) * jnp.cos(th) + jnp.sin(b) * jnp.cos(ph) * jnp.sin(th)
    th_local = jnp.arccos(jnp.clip(cos_tp, -1.0 + 1e-7, 1.0 - 1e-7))
    ph_local = jnp.arctan2(
        jnp.sin(th) * jnp.sin(ph), jnp.cos(b) * jnp.sin(th) * jnp.cos(ph) - jnp.sin(b) * jnp.cos(th)
    )
    return jnp.degrees(th_local), jnp.degrees(ph_local)


def _array_factor(cos_zenith: Array, tilt_deg: Array, n_elements: int, spacing_wl: float) -> Array:
    """``|Σ_m w_m a_m(θ)|²`` of a vertical ULA steered to zenith 90° + tilt (linear, peak M).

    ``a_m(θ) = exp(j 2π (m−1) d/λ cos θ)``, ``w_m = exp(−j 2π (m−1) d/λ cos θ_tilt) / √M``
    (TR 38.901 clause 7.3 / TR 36.897 eq. 5.2-2 with θ_etilt = 90° + tilt).
    """
    cos_tilt = jnp.cos(jnp.radians(90.0 + tilt_deg))
    psi = 2.0 * jnp.pi * spacing_wl * (cos_zenith - cos_tilt)
    # Closed form of the geometric sum: |Σ_m e^{jmψ}|² = sin²(Mψ/2) / sin²(ψ/2) = U_{M−1}(x)²
    # with x = cos(ψ/2) and U the Chebyshev polynomial of the second kind (U_0 = 1, U_1 = 2x,
    # U_{k+1} = 2x U_k − U_{k−1}): one cosine and M multiply-adds per direction, no division,
    # M² at the peak, smooth everywhere.
    x = _trig.cos(0.5 * psi)
    u_prev, u = jnp.ones_like(x), 2.0 * x
    if n_elements == 1:
        u = u_prev
    for _ in range(n_elements - 2):
        u_prev, u = u, 2.0 * x * u - u_prev
    return jnp.square(u) / n_elements


def array_gain_dbi(
    zenith_deg: ArrayLike,
    azimuth_deg: ArrayLike,
    tilt_deg: ArrayLike,
    n_elements: int = 10,
    spacing_wl: float = 0.5,
    mech_tilt_deg: ArrayLike = 0.0,
) -> Float[Array, "..."]:
    """Gain of a vertical column of ``n_elements`` Table 7.3-1 elements with electrical tilt (dBi).

    ``G(θ, φ) = A(θ', φ') + 10 log10 |Σ_m w_m a_m(θ')|²``, where (θ', φ') are the angles in the
    mechanically down-tilted panel frame (:func:`rotate_downtilt_deg`), ``a_m`` is the element
    phase of a plane wave at zenith θ' and ``w_m`` are unit-norm weights that steer the beam to the
    zenith 90° + ``tilt_deg`` (electrical downtilt). Peak gain is ``G_max + 10 log10 M`` (18 dBi
    for M = 10) at the tilt; the vertical half-power beamwidth is ≈ 0.886 λ/(M d) rad ≈ 10° for
    M = 10, d = λ/2. Differentiable in ``tilt_deg`` and ``mech_tilt_deg``; all inputs broadcast.

    Args:
        zenith_deg: global zenith angle of the direction (deg, 90 = horizon).
        azimuth_deg: azimuth relative to the sector boresight (deg).
        tilt_deg: electrical downtilt (deg, positive = below the horizon).
        n_elements: number of vertically stacked elements M (static).
        spacing_wl: element spacing d/λ (static).
        mech_tilt_deg: mechanical downtilt β of the panel (deg).
    """
    if n_elements < 1:
        raise ValueError(f"array_gain_dbi: n_elements must be >= 1, got {n_elements!r}")
    if not spacing_wl > 0.0:
        raise ValueError(f"array_gain_dbi: spacing_wl must be positive, got {spacing_wl!r}")
    if isinstance(mech_tilt_deg, int | float) and mech_tilt_deg == 0:
        th_local = jnp.asarray(zenith_deg, jnp.float32)  # no mechanical tilt: frames coincide
        ph_local = jnp.asarray(azimuth_deg, jnp.float32)
    else:
        th_local, ph_local = rotate_downtilt_deg(zenith_deg, azimuth_deg, mech_tilt_deg)
    tilt_deg = jnp.asarray(tilt_deg, jnp.float32)
    af = _array_factor(_trig.cos(jnp.radians(th_local)), tilt_deg, n_elements, spacing_wl)
    return element_gain_dbi(th_local, ph_local) + 10.0 * jnp.log10(af + _ARRAY_FACTOR_FLOOR)
