"""Configuration management (CM): the per-cell parameters an operator can set.

A CM is a plain pytree, ``dict[str, Float[Array, "... cells"]]``, keyed by parameter name
(e.g. ``{"tilt_deg": ..., "tx_power_dbm": ..., "cio_db": ...}``). A `CMSchema` describes the
parameters (unit, bounds, the operator's step grid, default) and provides the operations every
optimiser and sampler needs: validation at the boundary, projection onto the bounds, rounding onto
the step grid (hard, straight-through, relaxed), the [0, 1] scaling, and random sampling.

The schema is extensible: build a new one with `CMSchema.add` or by passing your own `CMParam`
tuple. Everything that may lie on a gradient path (`project`, `round_ste`, `relaxed_round`,
`to_unit`, `from_unit`) is pure JAX; `validate` is a boundary check on concrete arrays.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

CM = dict[str, Float[Array, "... cells"]]


@dataclass(frozen=True)
class CMParam:
    """One configurable per-cell parameter.

    Attributes:
        name: key in the CM dict; carries the unit suffix (``tilt_deg``, ``tx_power_dbm``).
        unit: human-readable unit ("deg", "dBm", "dB", ...).
        low: lowest allowed value (inclusive), also the origin of the step grid.
        high: highest allowed value (inclusive).
        step: the operator's step (granularity); values settable are ``low + k * step``.
        default: value used by `CMSchema.default`; must lie inside ``[low, high]``.
    """

    name: str
    unit: str
    low: float
    high: float
    step: float
    default: float

    def __post_init__(self) -> None:
        for field in ("low", "high", "step", "default"):
            v = getattr(self, field)
            if not math.isfinite(v):
                raise ValueError(f"CMParam {self.name!r}: {field}={v} is not finite")
        if not self.low < self.high:
            raise ValueError(f"CMParam {self.name!r}: need low < high, got {self.low}, {self.high}")
        if not self.step > 0:
            raise ValueError(f"CMParam {self.name!r}: step must be > 0, got {self.step}")
        if not self.low <= self.default <= self.high:
            raise ValueError(
                f"CMParam {self.name!r}: default {self.default} outside [{self.low}, {self.high}]"
            )

    @property
    def n_steps(self) -> int:
        """Number of grid steps between ``low`` and the highest grid point not above ``high``."""
        return int(math.floor((self.high - self.low) / self.step + 1e-6))


@dataclass(frozen=True)
class CMSchema:
    """An ordered collection of `CMParam`, with the operations on a CM dict.

    Args:
        params: the parameters, in order. Names must be unique.
    """

    params: tuple[CMParam, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", tuple(self.params))
        names = [p.name for p in self.params]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"CMSchema: duplicate parameter names {sorted(dup)}")
        if not names:
            raise ValueError("CMSchema: needs at least one parameter")

    # ------------------------------------------------------------------ structure
    @property
    def names(self) -> tuple[str, ...]:
        """Parameter names in schema order."""
        return tuple(p.name for p in self.params)

    def __getitem__(self, name: str) -> CMParam:
        for p in self.params:
            if p.name == name:
                return p
        raise KeyError(f"CMSchema has no parameter {name!r}; known: {list(self.names)}")

    def __contains__(self, name: object) -> bool:
        return name in self.names

    def __len__(self) -> int:
        return len(self.params)

    def add(self, param: CMParam) -> CMSchema:
        """Return a new schema with ``param`` appended (schemas are immutable)."""
        return CMSchema(self.params + (param,))

    def remove(self, name: str) -> CMSchema:
        """Return a new schema without parameter ``name``."""
        self[name]
        return CMSchema(tuple(p for p in self.params if p.name != name))

    # ------------------------------------------------------------------ boundary check
    def validate(self, cm: Mapping[str, Array], n_cells: int | None = None) -> None:
        """Check a CM on concrete arrays; raise `ValueError` naming the problem.

        Checks: every key is a schema parameter, none is missing, all parameters share one
        shape whose last axis is ``cells`` (equal to ``n_cells`` when given), all values are
        finite and inside ``[low, high]``. Not rounding: off-grid values are allowed (use
        `round` to snap them).

        Raises:
            ValueError: with the parameter name and, for value errors, the first offending
                cell index and value.
        """
        if not isinstance(cm, Mapping):
            raise ValueError(f"CM must be a mapping name -> array, got {type(cm).__name__}")
        unknown = [k for k in cm if k not in self.names]
        if unknown:
            raise ValueError(
                f"CM has unknown parameter(s) {unknown}; schema has {list(self.names)}"
            )
        missing = [n for n in self.names if n not in cm]
        if missing:
            raise ValueError(f"CM is missing parameter(s) {missing}")
        shape0 = None
        for p in self.params:
            try:
                v = np.asarray(cm[p.name], dtype=np.float64)
            except (TypeError, ValueError) as e:
                raise ValueError(f"CM parameter {p.name!r}: not numeric ({e})") from None
            if v.ndim == 0:
                raise ValueError(
                    f"CM parameter {p.name!r}: expected shape (..., cells), got scalar"
                )
            if n_cells is not None and v.shape[-1] != n_cells:
                raise ValueError(
                    f"CM parameter {p.name!r}: expected {n_cells} cells on the last axis, "
                    f"got shape {v.shape}"
                )
            if shape0 is None:
                shape0 = (p.name, v.shape)
            elif v.shape != shape0[1]:
                raise ValueError(
                    f"CM parameter {p.name!r}: shape {v.shape} differs from "
                    f"{shape0[0]!r} shape {shape0[1]}"
                )
            bad = ~np.isfinite(v)
            if bad.any():
                idx = np.argwhere(bad)[0]
                raise ValueError(
                    f"CM parameter {p.name!r}: non-finite value {v[tuple(idx)]} at index "
                    f"{tuple(int(i) for i in idx)} (cell {int(idx[-1])})"
                )
            tol = 1e-4 * p.step
            bad = (v < p.low - tol) | (v > p.high + tol)
            if bad.any():
                idx = np.argwhere(bad)[0]
                raise ValueError(
                    f"CM parameter {p.name!r}: value {v[tuple(idx)]} {p.unit} at index "
                    f"{tuple(int(i) for i in idx)} (cell {int(idx[-1])}) outside "
                    f"[{p.low}, {p.high}]"
                )

    # ------------------------------------------------------------------ transforms (pure JAX)
    def _map(self, fn, cm: Mapping[str, Array]) -> CM:
        return {p.name: fn(p, jnp.asarray(cm[p.name])) for p in self.params}

    def project(self, cm: Mapping[str, Array]) -> CM:
        """Clip every parameter to ``[low, high]`` (Euclidean projection onto the box)."""
        return self._map(lambda p, v: jnp.clip(v, p.low, p.high), cm)

    def round(self, cm: Mapping[str, Array]) -> CM:
        """Project, then snap onto the operator's grid ``low + k * step``, k = 0..n_steps.

        Zero gradient almost everywhere; use `round_ste` or `relaxed_round` on a gradient path.
        """

        def _round(p: CMParam, v):
            k = jnp.clip(jnp.floor((v - p.low) / p.step + 0.5), 0, p.n_steps)
            return (p.low + k * p.step).astype(v.dtype)

        return self._map(_round, self.project(cm))

    def round_ste(self, cm: Mapping[str, Array]) -> CM:
        """Straight-through estimator of `round`: forward value rounded, gradient identity.

        ``v + stop_gradient(round(v) - v)`` (Bengio et al., 2013, arXiv:1308.3432).
        """
        rounded = self.round(cm)
        return {
            n: jnp.asarray(cm[n]) + jax.lax.stop_gradient(rounded[n] - jnp.asarray(cm[n]))
            for n in self.names
        }

    def relaxed_round(self, cm: Mapping[str, Array], temperature: float = 0.1) -> CM:
        """Smooth rounding onto the step grid (a soft staircase), inside ``[low, high]``.

        In grid units ``u = (v - low) / step`` the staircase is relaxed to
        ``floor(u) + sigmoid((frac(u) - 1/2) / temperature)``: continuous (the sigmoid goes from
        ~0 to ~1 across each cell of the grid), monotone, tending to hard rounding as
        ``temperature -> 0`` and to the identity-like ramp as it grows. Values are projected
        first. ``temperature`` is in grid steps (dimensionless).
        """

        def _relax(p: CMParam, v):
            u = (v - p.low) / p.step
            fl = jax.lax.stop_gradient(jnp.floor(u))
            frac = u - fl
            # Normalise the sigmoid so that frac=0 -> 0 and frac=1 -> 1 exactly (continuity).
            s0 = jax.nn.sigmoid(-0.5 / temperature)
            s = (jax.nn.sigmoid((frac - 0.5) / temperature) - s0) / (1.0 - 2.0 * s0)
            k = jnp.clip(fl + s, 0.0, p.n_steps)
            return (p.low + k * p.step).astype(v.dtype)

        return self._map(_relax, self.project(cm))

    def to_unit(self, cm: Mapping[str, Array]) -> CM:
        """Affine map ``(v - low) / (high - low)`` to [0, 1] (no clipping)."""
        return self._map(lambda p, v: (v - p.low) / (p.high - p.low), cm)

    def from_unit(self, u: Mapping[str, Array]) -> CM:
        """Inverse of `to_unit`: ``low + u (high - low)`` (no clipping)."""
        return self._map(lambda p, v: p.low + v * (p.high - p.low), u)

    def to_vector(self, cm: Mapping[str, Array]) -> Float[Array, "... cells params"]:
        """Stack the parameters on a new last axis in schema order."""
        return jnp.stack([jnp.asarray(cm[n]) for n in self.names], axis=-1)

    def from_vector(self, x: Float[Array, "... cells params"]) -> CM:
        """Inverse of `to_vector`."""
        if x.shape[-1] != len(self):
            raise ValueError(f"from_vector: last axis must be {len(self)} params, got {x.shape}")
        return {n: x[..., i] for i, n in enumerate(self.names)}

    # ------------------------------------------------------------------ constructors
    def default(self, n_cells: int, dtype=jnp.float32) -> CM:
        """The default CM: every cell at its parameter's ``default``."""
        if int(n_cells) < 1:
            raise ValueError(f"default: n_cells must be >= 1, got {n_cells}")
        return {p.name: jnp.full((int(n_cells),), p.default, dtype) for p in self.params}

    def sample_uniform(
        self, key: PRNGKeyArray, n_cells: int, shape: tuple[int, ...] = (), on_grid: bool = True
    ) -> CM:
        """Broad sampling: every parameter uniform over its grid (or its interval).

        Args:
            key: PRNG key.
            n_cells: number of cells (last axis).
            shape: leading batch shape.
            on_grid: draw grid points (uniform over ``k = 0..n_steps``) rather than reals.
        """
        keys = jax.random.split(key, len(self))
        out = {}
        for k, p in zip(keys, self.params, strict=True):
            full = (*shape, int(n_cells))
            if on_grid:
                idx = jax.random.randint(k, full, 0, p.n_steps + 1)
                out[p.name] = (p.low + idx * p.step).astype(jnp.float32)
            else:
                out[p.name] = jax.random.uniform(k, full, jnp.float32, p.low, p.high)
        return out

    def sample_local(
        self,
        key: PRNGKeyArray,
        base_cm: Mapping[str, Array] | None = None,
        max_steps: int = 1,
        p_change: float = 0.3,
        shape: tuple[int, ...] = (),
        n_cells: int | None = None,
    ) -> CM:
        """Local sampling: perturb ``base_cm`` (default: `default`) by a few grid steps.

        Each (cell, parameter) changes with probability ``p_change`` by ``±1..max_steps`` steps
        (uniform magnitude and sign); the result is projected onto the bounds. This is the
        distribution of CM changes operators actually make (small moves around a baseline).

        Args:
            key: PRNG key.
            base_cm: CM to perturb, arrays of shape ``(cells,)`` (or broadcastable to
                ``shape + (cells,)``); defaults to ``default(n_cells)``.
            max_steps: largest step count of one change (>= 1).
            p_change: probability that a given (cell, parameter) changes.
            shape: leading batch shape of the samples.
            n_cells: needed only when ``base_cm`` is None.
        """
        if max_steps < 1:
            raise ValueError(f"sample_local: max_steps must be >= 1, got {max_steps}")
        if not 0.0 <= p_change <= 1.0:
            raise ValueError(f"sample_local: p_change must be in [0, 1], got {p_change}")
        if base_cm is None:
            if n_cells is None:
                raise ValueError("sample_local: give base_cm or n_cells")
            base_cm = self.default(n_cells)
        keys = jax.random.split(key, len(self))
        out = {}
        for k, p in zip(keys, self.params, strict=True):
            base = jnp.asarray(base_cm[p.name], jnp.float32)
            full = jnp.broadcast_shapes((*shape, base.shape[-1]), base.shape)
            k_on, k_mag, k_sign = jax.random.split(k, 3)
            on = jax.random.bernoulli(k_on, p_change, full)
            mag = jax.random.randint(k_mag, full, 1, max_steps + 1)
            sign = jnp.where(jax.random.bernoulli(k_sign, 0.5, full), 1, -1)
            out[p.name] = jnp.clip(base + on * sign * mag * p.step, p.low, p.high)
        return out


DEFAULT_CM_SCHEMA = CMSchema(
    (
        CMParam("tilt_deg", "deg", low=0.0, high=15.0, step=1.0, default=6.0),
        CMParam("tx_power_dbm", "dBm", low=30.0, high=49.0, step=1.0, default=46.0),
        CMParam("cio_db", "dB", low=-6.0, high=6.0, step=1.0, default=0.0),
    )
)
"""Electrical downtilt (0-15 deg), total cell transmit power (30-49 dBm) and the cell
individual offset used in association (TS 38.331 ``cellIndividualOffset``, -6..+6 dB here)."""

__all__ = ["CM", "CMParam", "CMSchema", "DEFAULT_CM_SCHEMA"]
