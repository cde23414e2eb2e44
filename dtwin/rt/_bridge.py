"""JAX <-> Sionna RT bridge: ray-traced paths with gradients w.r.t. radio-material properties.

Dr.Jit cannot be called from JAX through `drjit.wrap` (jax -> drjit is not implemented in
Dr.Jit 1.5), so the bridge is a `jax.custom_vjp` around host callbacks (`jax.pure_callback`):

* forward: set the materials and devices in the `RTScene`, run `sionna.rt.PathSolver`, return
  per-path complex gains, delays and angles padded to ``config.max_num_paths`` paths;
* backward: re-run the (deterministic) solver with ``dr.enable_grad`` on the material properties
  and back-propagate the JAX cotangents of the path gains with ``dr.backward``.

Differentiable: the real and imaginary parts of the path coefficients (and everything computed
from them in JAX: path gains, RSRP, ...) w.r.t. the material properties. Not differentiable:
delays and angles (they do not depend on materials; they are returned with zero gradient), and
transmitter/receiver positions (differentiating w.r.t. them raises `NotImplementedError`).
"""

from __future__ import annotations

from functools import partial

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.custom_derivatives import SymbolicZero
from jaxtyping import Array, Bool, Float, Int

from dtwin.rt._scene import RTScene

_NONE_INTERACTION = 0  # sionna.rt.constants.InteractionType.NONE


class RTPaths(eqx.Module):
    """Ray-traced propagation paths of every link, padded to a fixed number of paths.

    Axes are ``[rx, tx, paths]``; padded / invalid paths have zero gain and ``valid == False``.
    Angles follow TR 38.901 clause 7.5 naming (ZoD/AoD at the transmitter, ZoA/AoA at the
    receiver), zenith measured from the +z axis (90 deg = horizon), azimuth from +x counter-
    clockwise, in degrees.

    Attributes:
        a_re, a_im: real / imaginary part of the path coefficient (unitless, linear amplitude,
            isotropic antennas); differentiable w.r.t. material properties.
        tau_s: path delay in s (not differentiable).
        zod_deg, aod_deg, zoa_deg, aoa_deg: departure / arrival angles (not differentiable).
        valid: whether the path exists.
        los: whether the path is the line-of-sight path (no interaction).
        num_paths_found: number of valid paths the solver found per link (may exceed the padded
            length; then the shortest-delay paths were kept).
    """

    a_re: Float[Array, "rx tx paths"]
    a_im: Float[Array, "rx tx paths"]
    tau_s: Float[Array, "rx tx paths"]
    zod_deg: Float[Array, "rx tx paths"]
    aod_deg: Float[Array, "rx tx paths"]
    zoa_deg: Float[Array, "rx tx paths"]
    aoa_deg: Float[Array, "rx tx paths"]
    valid: Bool[Array, "rx tx paths"]
    los: Bool[Array, "rx tx paths"]
    num_paths_found: Int[Array, "rx tx"]

    @property
    def power(self) -> Float[Array, "rx tx paths"]:
        """Per-path power gain |a|^2 (linear)."""
        return jnp.square(self.a_re) + jnp.square(self.a_im)


# ----------------------------------------------------------------------------- host side
def _select(tau: np.ndarray, valid: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the ``k`` shortest-delay valid paths per link, and a mask of real entries."""
    n_rx, n_tx, p = tau.shape
    order = np.argsort(np.where(valid, tau, np.inf), axis=-1, kind="stable")[..., :k]
    kept = np.take_along_axis(valid, order, axis=-1)
    if p < k:
        pad = k - p
        order = np.concatenate([order, np.zeros((n_rx, n_tx, pad), order.dtype)], axis=-1)
        kept = np.concatenate([kept, np.zeros((n_rx, n_tx, pad), bool)], axis=-1)
    return order, kept


def _run(scene: RTScene, keys, values, tx, rx, *, enable_grad: bool):
    variables = scene.set_materials(keys, values, enable_grad=enable_grad)
    scene.set_devices(np.asarray(tx), np.asarray(rx))
    paths = scene.trace()
    a_re, a_im = paths.a
    n_rx, n_tx = rx.shape[0], tx.shape[0]
    p = a_re.shape[-1]
    tau = paths.tau.numpy().reshape(n_rx, n_tx, p)
    valid = paths.valid.numpy().reshape(n_rx, n_tx, p).astype(bool)
    return variables, paths, a_re, a_im, tau, valid


def _host_forward(scene: RTScene, keys, values, tx, rx):
    k = scene.config.max_num_paths
    with scene.lock:
        _, paths, a_re, a_im, tau, valid = _run(scene, keys, values, tx, rx, enable_grad=False)
        n_rx, n_tx, p = tau.shape
        order, kept = _select(tau, valid, k)

        def take(x, fill=0.0):
            x = np.asarray(x).reshape(n_rx, n_tx, p) if p else np.zeros((n_rx, n_tx, 1))
            out = np.take_along_axis(x, np.minimum(order, max(p - 1, 0)), axis=-1)
            return np.where(kept, out, fill).astype(np.float32)

        deg = 180.0 / np.pi
        if p and scene.config.max_depth > 0:
            first = paths.interactions.numpy().reshape(-1, n_rx, n_tx, p)[0]
            los_all = valid & (first == _NONE_INTERACTION)
        else:
            los_all = valid.copy()
        los = take(los_all.astype(np.float32)) > 0.5
        return (
            take(a_re.numpy()),
            take(a_im.numpy()),
            take(tau),
            take(paths.theta_t.numpy()) * np.float32(deg),
            take(paths.phi_t.numpy()) * np.float32(deg),
            take(paths.theta_r.numpy()) * np.float32(deg),
            take(paths.phi_r.numpy()) * np.float32(deg),
            kept,
            los,
            valid.sum(axis=-1).astype(np.int32),
        )


def _host_backward(scene: RTScene, keys, values, tx, rx, ct_re, ct_im):
    import drjit as dr
    import mitsuba as mi

    k = scene.config.max_num_paths
    with scene.lock:
        variables, _, a_re, a_im, tau, valid = _run(scene, keys, values, tx, rx, enable_grad=True)
        n_rx, n_tx, p = tau.shape
        if p == 0 or not variables:
            return np.zeros(len(keys), np.float32)
        order, kept = _select(tau, valid, k)
        full_re = np.zeros((n_rx, n_tx, p), np.float32)
        full_im = np.zeros((n_rx, n_tx, p), np.float32)
        m = min(p, k)
        np.put_along_axis(full_re, order[..., :m], np.where(kept, ct_re, 0.0)[..., :m], axis=-1)
        np.put_along_axis(full_im, order[..., :m], np.where(kept, ct_im, 0.0)[..., :m], axis=-1)
        loss = dr.sum(
            a_re.array * mi.Float(full_re.ravel()) + a_im.array * mi.Float(full_im.ravel())
        )
        dr.backward(loss)
        grads = np.array([float(dr.grad(v)[0]) for v in variables], np.float32)
        for v in variables:
            dr.disable_grad(v)
        return grads


# ----------------------------------------------------------------------------- JAX side
def _out_shapes(scene: RTScene, n_rx: int, n_tx: int):
    k = scene.config.max_num_paths
    f = jax.ShapeDtypeStruct((n_rx, n_tx, k), jnp.float32)
    b = jax.ShapeDtypeStruct((n_rx, n_tx, k), jnp.bool_)
    return (f, f, f, f, f, f, f, b, b, jax.ShapeDtypeStruct((n_rx, n_tx), jnp.int32))


def _forward_callback(scene: RTScene, keys: tuple, values, tx, rx):
    return jax.pure_callback(
        partial(_host_forward, scene, keys),
        _out_shapes(scene, rx.shape[0], tx.shape[0]),
        values,
        tx,
        rx,
        vmap_method="sequential",
    )


@partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def _traced(scene: RTScene, keys: tuple, values, tx, rx):
    return _forward_callback(scene, keys, values, tx, rx)


def _traced_fwd(scene, keys, values, tx, rx):
    if tx.perturbed or rx.perturbed:
        raise NotImplementedError(
            "dtwin.rt: gradients w.r.t. transmitter/receiver positions are not supported; "
            "wrap the positions in jax.lax.stop_gradient or differentiate only the material "
            "parameters."
        )
    out = _forward_callback(scene, keys, values.value, tx.value, rx.value)
    return out, (values.value, tx.value, rx.value)


def _traced_bwd(scene, keys, res, cts):
    values, tx, rx = res
    ct_re, ct_im = cts[0], cts[1]
    shape = (rx.shape[0], tx.shape[0], scene.config.max_num_paths)
    ct_re = jnp.zeros(shape, jnp.float32) if isinstance(ct_re, SymbolicZero) else ct_re
    ct_im = jnp.zeros(shape, jnp.float32) if isinstance(ct_im, SymbolicZero) else ct_im
    g = jax.pure_callback(
        partial(_host_backward, scene, keys),
        jax.ShapeDtypeStruct(values.shape, jnp.float32),
        values,
        tx,
        rx,
        ct_re,
        ct_im,
        vmap_method="sequential",
    )
    return g, jnp.zeros_like(tx), jnp.zeros_like(rx)


_traced.defvjp(_traced_fwd, _traced_bwd, symbolic_zeros=True)


def _check_positions(name: str, x) -> Float[Array, "n 3"]:
    x = jnp.asarray(x, jnp.float32)
    if x.ndim != 2 or x.shape[1] != 3 or x.shape[0] < 1:
        raise ValueError(f"{name} must have shape [n >= 1, 3] (x, y, z in m), got {x.shape}")
    return x


def rt_paths(
    material_params: dict[str, dict[str, Float[Array, ""]]],
    tx_positions_m: Float[Array, "tx 3"],
    rx_positions_m: Float[Array, "rx 3"],
    *,
    scene: RTScene,
) -> RTPaths:
    """Trace every transmitter-receiver link of ``scene`` with the given material properties.

    Args:
        material_params: ``{material: {field: scalar}}``; fields among ``relative_permittivity``,
            ``conductivity`` [S/m], ``scattering_coefficient``, ``thickness`` [m]. Materials or
            fields left out keep the scene's ITU defaults at ``scene.carrier_hz``
            (ITU-R P.2040 Table 3). Every given value is differentiable.
        tx_positions_m: transmitter positions [tx, 3] in the scene frame, m (not differentiable).
        rx_positions_m: receiver positions [rx, 3], m (not differentiable).
        scene: the `RTScene` (static).

    Returns:
        `RTPaths` with axes ``[rx, tx, scene.config.max_num_paths]``.

    Works under `jax.jit`, `jax.grad` (w.r.t. ``material_params``) and `jax.vmap` (batched
    inputs are traced one after the other). Raises `NotImplementedError` when differentiated
    w.r.t. positions.
    """
    if not isinstance(scene, RTScene):
        raise TypeError(f"scene must be a dtwin.rt.RTScene, got {type(scene).__name__}")
    keys = tuple(scene.check_material_params(material_params))
    vals = []
    for m, f in keys:
        v = jnp.asarray(material_params[m][f], jnp.float32)
        if v.shape != ():
            raise ValueError(
                f"material_params[{m!r}][{f!r}] must be a scalar, got shape {v.shape} "
                "(use jax.vmap for batches)"
            )
        vals.append(v)
    values = jnp.stack(vals) if vals else jnp.zeros((0,), jnp.float32)
    tx = _check_positions("tx_positions_m", tx_positions_m)
    rx = _check_positions("rx_positions_m", rx_positions_m)
    out = _traced(scene, keys, values, tx, rx)
    a_re, a_im = out[0], out[1]
    geo = [jax.lax.stop_gradient(o) for o in out[2:]]
    return RTPaths(a_re, a_im, *geo)


def path_gain(paths: RTPaths) -> Float[Array, "rx tx"]:
    """Path gain of every link, linear: the incoherent sum of path powers sum_n |a_n|^2."""
    return jnp.sum(paths.power, axis=-1)


def path_gain_db(paths: RTPaths, floor_db: float = -300.0) -> Float[Array, "rx tx"]:
    """Path gain of every link in dB, ``10 log10(sum_n |a_n|^2)``, floored at ``floor_db``."""
    g = path_gain(paths)
    return 10.0 * jnp.log10(jnp.maximum(g, 10.0 ** (floor_db / 10.0)))


def rt_path_gains(
    material_params: dict[str, dict[str, Float[Array, ""]]],
    tx_positions_m: Float[Array, "tx 3"],
    rx_positions_m: Float[Array, "rx 3"],
    *,
    scene: RTScene,
) -> tuple[Float[Array, "rx tx"], Float[Array, "rx tx"]]:
    """Ray-traced path gain of every link: ``(linear, dB)``, each ``[rx, tx]``.

    See `rt_paths` for the arguments; links without any path have gain 0 (-300 dB floor).
    """
    paths = rt_paths(material_params, tx_positions_m, rx_positions_m, scene=scene)
    return path_gain(paths), path_gain_db(paths)
