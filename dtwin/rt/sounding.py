"""Virtual channel soundings: aggregate ray-traced paths into per-link large-scale parameters.

The aggregation S(.) maps the paths of one link to the quantities TR 38.901 clause 7.5 models:
path gain, RMS delay spread, azimuth/zenith spreads of arrival and departure, Ricean K-factor
and LOS state. All functions are pure JAX over the `RTPaths` arrays (batched over
``[rx, tx]``), so they are differentiable w.r.t. material properties through the path powers.
"""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float

from dtwin.rt._bridge import RTPaths, rt_paths
from dtwin.rt._scene import RTScene

_K_MAX_DB = 60.0


class LinkLSPs(eqx.Module):
    """Large-scale parameters of every sounded link, ``[rx, tx]``; NaN where undefined.

    Attributes:
        gain_db: path gain 10 log10(sum |a_n|^2) (NaN without any path).
        ds_s: RMS delay spread, s.
        asa_deg, asd_deg: azimuth spread of arrival / departure (circular, TR 25.996 Annex A).
        zsa_deg, zsd_deg: zenith spread of arrival / departure (power-weighted std).
        k_db: Ricean K-factor, LOS power over the power of all other paths, dB (NaN for NLOS
            links, capped at 60 dB when the LOS path is the only path).
        los: whether the link has a line-of-sight path.
        has_paths: whether the tracer found any path.
    """

    gain_db: Float[Array, "rx tx"]
    ds_s: Float[Array, "rx tx"]
    asa_deg: Float[Array, "rx tx"]
    asd_deg: Float[Array, "rx tx"]
    zsa_deg: Float[Array, "rx tx"]
    zsd_deg: Float[Array, "rx tx"]
    k_db: Float[Array, "rx tx"]
    los: Bool[Array, "rx tx"]
    has_paths: Bool[Array, "rx tx"]


def _weights(power, valid):
    p = jnp.where(valid, power, 0.0)
    total = jnp.sum(p, axis=-1, keepdims=True)
    return p / jnp.where(total > 0, total, 1.0), total[..., 0] > 0


def rms_delay_spread_s(
    power: Float[Array, "... paths"],
    tau_s: Float[Array, "... paths"],
    valid: Bool[Array, "... paths"],
) -> Float[Array, "..."]:
    """RMS delay spread sqrt(sum P_n tau_n^2 / sum P_n - (sum P_n tau_n / sum P_n)^2), s.

    TR 38.901 clause 7.5 (delay spread DS). Delays are taken relative to the first path to keep
    float32 precision. NaN for links without paths.
    """
    w, ok = _weights(power, valid)
    t0 = jnp.min(jnp.where(valid, tau_s, jnp.inf), axis=-1, keepdims=True)
    t = jnp.where(valid, tau_s - jnp.where(jnp.isfinite(t0), t0, 0.0), 0.0)
    mean = jnp.sum(w * t, axis=-1, keepdims=True)
    var = jnp.sum(w * jnp.square(t - mean), axis=-1)
    return jnp.where(ok, jnp.sqrt(jnp.maximum(var, 0.0)), jnp.nan)


def zenith_spread_deg(
    power: Float[Array, "... paths"],
    zenith_deg: Float[Array, "... paths"],
    valid: Bool[Array, "... paths"],
) -> Float[Array, "..."]:
    """Power-weighted standard deviation of zenith angles (in [0, 180] deg, no wrapping), deg."""
    w, ok = _weights(power, valid)
    z = jnp.where(valid, zenith_deg, 0.0)
    mean = jnp.sum(w * z, axis=-1, keepdims=True)
    var = jnp.sum(w * jnp.square(z - mean), axis=-1)
    return jnp.where(ok, jnp.sqrt(jnp.maximum(var, 0.0)), jnp.nan)


def circular_angle_spread_deg(
    power: Float[Array, "... paths"],
    azimuth_deg: Float[Array, "... paths"],
    valid: Bool[Array, "... paths"],
) -> Float[Array, "..."]:
    """Circular azimuth spread of TR 25.996 Annex A, deg.

    sigma_AS = min_Delta sqrt(sum_n P_n (theta_n,mu(Delta))^2 / sum_n P_n), with
    theta_n(Delta) = wrap(theta_n + Delta), mu(Delta) its power-weighted mean and
    theta_n,mu(Delta) = wrap(theta_n(Delta) - mu(Delta)), wrap(x) to [-180, 180). The minimum is
    taken over shifts that centre each path plus a 5-deg grid.
    """
    w, ok = _weights(power, valid)

    def wrap(x):
        return jnp.mod(x + 180.0, 360.0) - 180.0

    grid = jnp.arange(0.0, 360.0, 5.0, dtype=azimuth_deg.dtype)
    shifts = jnp.concatenate(
        [-azimuth_deg, jnp.broadcast_to(grid, azimuth_deg.shape[:-1] + grid.shape)], axis=-1
    )  # [..., shifts]
    theta = wrap(azimuth_deg[..., None, :] + shifts[..., :, None])  # [..., shifts, paths]
    mu = jnp.sum(w[..., None, :] * theta, axis=-1, keepdims=True)
    dev = wrap(theta - mu)
    sigma2 = jnp.sum(w[..., None, :] * jnp.square(dev), axis=-1)
    return jnp.where(ok, jnp.sqrt(jnp.min(sigma2, axis=-1)), jnp.nan)


def k_factor_db(
    power: Float[Array, "... paths"], los: Bool[Array, "... paths"], valid: Bool[Array, "... paths"]
) -> Float[Array, "..."]:
    """Ricean K-factor 10 log10(P_LOS / sum of the other paths' powers), dB (TR 38.901 7.5).

    NaN for links without a LOS path; capped at 60 dB.
    """
    p = jnp.where(valid, power, 0.0)
    p_los = jnp.sum(jnp.where(los, p, 0.0), axis=-1)
    p_rest = jnp.sum(jnp.where(los, 0.0, p), axis=-1)
    k = 10.0 * jnp.log10(jnp.maximum(p_los, 1e-30) / jnp.maximum(p_rest, 1e-30))
    return jnp.where(jnp.any(los & valid, axis=-1), jnp.minimum(k, _K_MAX_DB), jnp.nan)


def link_lsps(paths: RTPaths) -> LinkLSPs:
    """Aggregate the paths of every link into its large-scale parameters (`LinkLSPs`)."""
    p, v = paths.power, paths.valid
    total = jnp.sum(jnp.where(v, p, 0.0), axis=-1)
    has = total > 0
    return LinkLSPs(
        gain_db=jnp.where(has, 10.0 * jnp.log10(jnp.where(has, total, 1.0)), jnp.nan),
        ds_s=rms_delay_spread_s(p, paths.tau_s, v),
        asa_deg=circular_angle_spread_deg(p, paths.aoa_deg, v),
        asd_deg=circular_angle_spread_deg(p, paths.aod_deg, v),
        zsa_deg=zenith_spread_deg(p, paths.zoa_deg, v),
        zsd_deg=zenith_spread_deg(p, paths.zod_deg, v),
        k_db=k_factor_db(p, paths.los, v),
        los=jnp.any(paths.los & v, axis=-1),
        has_paths=has,
    )


def sound(
    material_params: dict,
    tx_positions_m: Float[Array, "tx 3"],
    rx_positions_m: Float[Array, "rx 3"],
    *,
    scene: RTScene,
) -> tuple[RTPaths, LinkLSPs]:
    """Virtual sounding: trace every link of ``scene`` and aggregate it.

    Equivalent to `rt_paths` followed by `link_lsps`; returns both.
    """
    paths = rt_paths(material_params, tx_positions_m, rx_positions_m, scene=scene)
    return paths, link_lsps(paths)


def grid_positions_m(
    x_range_m: tuple[float, float],
    y_range_m: tuple[float, float],
    spacing_m: float,
    height_m: float,
) -> Float[Array, "points 3"]:
    """Receiver positions on a regular grid at ``height_m``, [points, 3] in m.

    (A sounding route is any [n, 3] array of positions.)
    """
    if spacing_m <= 0:
        raise ValueError(f"spacing_m must be positive, got {spacing_m}")
    if x_range_m[1] < x_range_m[0] or y_range_m[1] < y_range_m[0]:
        raise ValueError(f"empty grid: x_range_m={x_range_m}, y_range_m={y_range_m}")
    xs = jnp.arange(x_range_m[0], x_range_m[1] + 1e-6, spacing_m, dtype=jnp.float32)
    ys = jnp.arange(y_range_m[0], y_range_m[1] + 1e-6, spacing_m, dtype=jnp.float32)
    x, y = jnp.meshgrid(xs, ys, indexing="xy")
    return jnp.stack([x.ravel(), y.ravel(), jnp.full(x.size, height_m, jnp.float32)], axis=-1)
