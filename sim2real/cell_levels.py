"""Per-cell KPI levels read from the commercial data (the environment's cell identity).

Cells of a real network differ persistently in ways no state feature names: an antenna mounted
a degree off, a feeder loss, clutter around one site, a building that shadows one sector. The
surrogate's environment part sees only each cell's state (traffic, served UEs, hour) and static
features, so two cells in the same state get the same predicted level; on the field stand-in
the exact throughput of its 21 cells at the default CM spreads by 16 % (log std) while the
predicted levels are equal, and that spread is most of the in-range error.

The commercial data hold each cell's own history, hundreds of periods per cell, so its
persistent deviation from the model is well determined: `fit_cell_levels` takes each cell's
level on the commercial training rows -- for log targets the log of its mean ratio of KPI to
prediction (Duan's smearing: the model, fitted to log KPIs, predicts a geometric mean, and the
ratio of means lifts it to the arithmetic mean that KPIs averaged over periods and UEs measure;
``level="geometric"`` keeps the mean log residual), for other targets the mean residual --
shrunk towards the level of all cells by the empirical-Bayes
(James--Stein) factor ``tau^2 / (tau^2 + s_c^2 / n_c)``, with ``tau^2`` the variance of the
true cell means (the variance of the observed means less their sampling variance) and
``s_c^2 / n_c`` the sampling variance of cell ``c``'s mean: a cell with few rows or a network
whose cells do not differ keeps (almost) the common level. `CellLevels.apply` adds the levels
to a batch's ``prior`` (the model-domain term every prediction adds, `sim2real.Surrogate`),
matching cells by ``cell_id``; a cell it does not know gets the common level (the
level of all rows together). The rows of one cell are treated as independent, which they are
not quite (hour of day, and they are the rows the model was trained on): with hundreds of rows
per cell there is then almost no shrinkage, which is the intent -- it matters for cells with a
handful of rows. The surrogate itself is not
touched, so its CM response -- the twin's, for Sim2Real -- stays exactly as trained: the level
is an environment quantity, learned from commercial data only, as the Sim2Real split demands.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from .dataset import GraphBatch, to_model_domain
from .surrogate import Surrogate, apply


class CellLevels(eqx.Module):
    """Per-cell additive levels in the model domain (log for log targets), keyed by cell id.

    Attributes:
        cell_id: ``[n]`` cell identifiers (unique).
        offset: ``[n, n_targets]`` model-domain level per cell (a log-ratio for log targets:
            ``0.1`` is +10.5 %).
        n_rows: ``[n]`` commercial rows each level was read from.
        common: ``[n_targets]`` the level of a cell not in ``cell_id`` (all cells' mean).
        target_names: target per column of ``offset`` (static).
    """

    cell_id: Int[Array, " n"]
    offset: Float[Array, "n n_targets"]
    n_rows: Int[Array, " n"]
    common: Float[Array, " n_targets"]
    target_names: tuple[str, ...] = eqx.field(static=True)

    def __check_init__(self):
        ids = np.asarray(self.cell_id)
        if ids.ndim != 1 or ids.size == 0:
            raise ValueError(f"CellLevels: cell_id must be 1-D and non-empty, got {ids.shape}")
        uniq, counts = np.unique(ids, return_counts=True)
        if np.any(counts > 1):
            raise ValueError(f"CellLevels: duplicate cell_id(s) {uniq[counts > 1][:5].tolist()}")
        nt = len(self.target_names)
        if tuple(np.shape(self.offset)) != (len(ids), nt) or np.shape(self.common) != (nt,):
            raise ValueError(
                f"CellLevels: offset must be [cells, targets] = [{len(ids)}, {nt}] and common "
                f"[{nt}], got {tuple(np.shape(self.offset))} and {tuple(np.shape(self.common))}"
            )
        bad = ~np.isfinite(np.asarray(self.offset)).all(axis=1)
        if bad.any() or not np.isfinite(np.asarray(self.common)).all():
            raise ValueError(
                f"CellLevels: non-finite level for cell_id(s) {ids[bad][:5].tolist()} or in common"
            )

    def for_batch(self, batch: GraphBatch) -> Float[np.ndarray, "cells n_targets"]:
        """The level of each of ``batch``'s cells (``common`` for cells not fitted),
        ``[cells, targets]``."""
        if tuple(batch.target_names) != tuple(self.target_names):
            raise ValueError(
                f"CellLevels: fitted for targets {list(self.target_names)}, the batch holds "
                f"{list(batch.target_names)}"
            )
        ids = np.asarray(self.cell_id)
        order = np.argsort(ids)
        want = np.asarray(batch.cell_id)
        pos = np.clip(np.searchsorted(ids[order], want), 0, len(ids) - 1)
        known = ids[order][pos] == want
        off = np.asarray(self.offset)[order][pos]
        return np.where(known[:, None], off, np.asarray(self.common)[None]).astype(np.float32)

    def apply(self, batch: GraphBatch) -> GraphBatch:
        """``batch`` with each cell's level added to its ``prior`` (every snapshot)."""
        add = jnp.asarray(self.for_batch(batch))
        return eqx.tree_at(lambda b: b.prior, batch, batch.prior + add[None])

    def to_csv(self, path: str | Path) -> Path:
        """Write ``cell_id, n_rows, level_<target>...`` (model domain) to a CSV file; the first
        row, ``cell_id`` ``common``, holds the level of cells not listed."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        ids, n, off = (np.asarray(x) for x in (self.cell_id, self.n_rows, self.offset))
        with open(path, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["cell_id", "n_rows", *[f"level_{t}" for t in self.target_names]])
            w.writerow([_COMMON, int(n.sum()), *[float(v) for v in np.asarray(self.common)]])
            for c, k, row in zip(ids.tolist(), n.tolist(), off.tolist(), strict=True):
                w.writerow([c, k, *row])
        return path

    @classmethod
    def from_csv(cls, path: str | Path) -> CellLevels:
        """Read a file written by `to_csv`; every problem names the file (and line)."""
        path = Path(path)
        with open(path, newline="") as f:
            rows = list(csv.reader(f))
        if not rows or rows[0][:2] != ["cell_id", "n_rows"] or len(rows[0]) < 3:
            raise ValueError(f"{path}: expected a header 'cell_id,n_rows,level_<target>...'")
        bad = [c for c in rows[0][2:] if not c.startswith("level_")]
        if bad:
            raise ValueError(f"{path}: column(s) {bad} are not 'level_<target>'")
        names = tuple(c[len("level_") :] for c in rows[0][2:])
        if len(rows) < 3 or rows[1][:1] != [_COMMON]:
            raise ValueError(f"{path}: expected a '{_COMMON}' row on line 2 and one row per cell")
        vals = []
        for line, r in enumerate(rows[1:], start=2):
            if len(r) != 2 + len(names):
                raise ValueError(f"{path}, line {line}: {len(r)} fields, expected {2 + len(names)}")
            try:
                cid = None if line == 2 else int(r[0])  # line 2: the common row
                vals.append((cid, int(r[1]), [float(v) for v in r[2:]]))
            except ValueError as e:
                raise ValueError(f"{path}, line {line}: {e}") from None
        ids = np.array([v[0] for v in vals[1:]], np.int64)
        n = np.array([v[1] for v in vals[1:]], np.int32)
        off = np.array([v[2] for v in vals[1:]], np.float32)
        try:
            return cls(jnp.asarray(ids), jnp.asarray(off), n, jnp.asarray(vals[0][2]), names)
        except ValueError as e:
            raise ValueError(f"{path}: {e}") from None


_COMMON = "common"
"""`CellLevels.to_csv`'s ``cell_id`` of the row holding the common level."""


def _ensemble_apply(ensemble: Surrogate, batch: GraphBatch) -> Array:
    """Model-domain predictions ``[snapshots, cells, targets]``, averaged over members."""
    if ensemble.env.offset.ndim == 2:  # stacked members
        z = eqx.filter_vmap(apply, in_axes=(eqx.if_array(0), None))(ensemble, batch)
        return jnp.mean(z, axis=0)
    return apply(ensemble, batch)


def fit_cell_levels(
    ensemble: Surrogate,
    data: GraphBatch,
    *,
    shrink: bool = True,
    chunk: int = 256,
    level: str = "arithmetic",
) -> CellLevels:
    """Each cell's persistent residual of ``ensemble`` on ``data`` (closed form, see module doc).

    Args:
        ensemble: a trained surrogate or stacked ensemble (its members' mean model-domain
            prediction is the reference).
        data: the commercial rows the levels are read from (training rows, never test rows);
            its ``prior`` is part of the prediction, so levels fitted on a batch that already
            carries levels are increments.
        shrink: shrink each cell's mean towards the all-cell mean (empirical Bayes); ``False``
            keeps the raw per-cell means.
        chunk: snapshots per evaluation.
        level: for log targets, ``"arithmetic"`` (default): the log of the cell's mean ratio
            ``mean_rows(y / prediction)`` (Duan's smearing estimate: it turns a model of
            ``E[log y]`` -- the squared-log loss -- into one of the arithmetic mean ``E[y]``,
            which is what a KPI averaged over periods and UEs measures; for a model trained
            with the Gamma loss it is that loss's optimal offset); ``"geometric"``: the mean
            log residual (the prediction stays a geometric mean). Targets in their own units
            always get the mean residual. The shrinkage factor is the one of the mean log
            residuals, applied to the deviation of each cell's level from the common one.

    Returns:
        `CellLevels` for every cell of ``data`` with at least one row (``n_rows`` > 0); a cell
        without rows gets no entry (and so the common level wherever applied).

    Raises:
        ValueError: if ``data`` holds no row or a target is non-finite on an unmasked row.
    """
    if int(chunk) < 1:
        raise ValueError(f"fit_cell_levels: chunk must be >= 1, got {chunk}")
    if level not in ("arithmetic", "geometric"):
        raise ValueError(
            f"fit_cell_levels: level must be 'arithmetic' or 'geometric', got {level!r}"
        )
    mask = np.asarray(data.mask)
    if not mask.any():
        raise ValueError("fit_cell_levels: the data hold no row (mask is all False)")
    z_true = np.asarray(to_model_domain(data.targets, data.log_targets))
    if not np.all(np.isfinite(z_true[mask])):
        raise ValueError("fit_cell_levels: non-finite target on an unmasked row")
    resid = []
    for i in range(0, data.n_snapshots, chunk):
        b = data.take(np.arange(i, min(i + chunk, data.n_snapshots)))
        resid.append(
            np.asarray(to_model_domain(b.targets, b.log_targets) - _ensemble_apply(ensemble, b))
        )
    w = mask[..., None].astype(np.float64)
    r = np.where(w > 0, np.concatenate(resid).astype(np.float64), 0.0)  # [snap, cells, tgt]
    n = mask.sum(axis=0)  # rows per cell
    has = n > 0
    nn = np.maximum(n, 1)[:, None]
    mean = (w * r).sum(axis=0) / nn  # [cells, targets]
    grand = np.sum((mean * n[:, None])[has], axis=0) / np.sum(n[has])
    center, cgrand = mean, grand
    if level == "arithmetic":  # log targets: log of the mean ratio (Duan's smearing)
        is_log = np.asarray(data.log_targets, bool)
        e = np.where(w > 0, np.exp(np.clip(r, -30.0, 30.0)), 0.0)
        arith = np.log(np.maximum(e.sum(axis=0) / nn, 1e-30))
        arith_grand = np.log(np.maximum(e.sum(axis=(0, 1)) / np.sum(n[has]), 1e-30))
        center = np.where(is_log[None], arith, mean)
        cgrand = np.where(is_log, arith_grand, grand)
    factor = np.ones_like(mean)
    if shrink:
        var = (w * (r - mean[None]) ** 2).sum(axis=0) / np.maximum(n - 1, 1)[:, None]
        s2 = np.sum(var[has] * (n[has, None] - 1), axis=0) / max(int(np.sum(n[has] - 1)), 1)
        se2 = s2[None] / nn  # sampling variance of each cell's mean (pooled within variance)
        k = int(np.sum(has))
        tau2 = np.maximum(  # method of moments: E sum (m - mbar)^2 / (K - 1) = tau2 + se2
            np.sum((mean[has] - grand) ** 2, axis=0) / max(k - 1, 1) - np.mean(se2[has], axis=0),
            0.0,
        )
        den = tau2[None] + se2
        ok = (tau2[None] > 0) & (den > 0)
        factor = np.divide(
            np.broadcast_to(tau2[None], den.shape), den, out=np.zeros_like(den), where=ok
        )
    final = cgrand[None] + factor * (center - cgrand[None])
    ids = np.asarray(data.cell_id)[has]
    return CellLevels(
        jnp.asarray(ids),
        jnp.asarray(final[has].astype(np.float32)),
        jnp.asarray(n[has].astype(np.int32)),
        jnp.asarray(cgrand.astype(np.float32)),
        tuple(data.target_names),
    )


__all__: Sequence[str] = ("CellLevels", "fit_cell_levels")
