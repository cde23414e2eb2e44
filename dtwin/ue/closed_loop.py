"""Closed loop: refine the UE generator so the twin reproduces a network's per-cell KPIs.

The real data behind `dtwin.ue.data` say nothing about where UEs are relative to the sites, and
their demand scale is a documented assumption. Network PM counters (PRB utilisation, mean UE
throughput, active UEs per cell) do constrain both. Here the generated population of every cell
is pushed through the differentiable network model (`dtwin.network.simulate` + `cell_kpis`) and
the normalised squared error between the simulated and target KPIs is back-propagated, through
the reparameterised samples (`dtwin.ue.cvae.sample`), into the decoder's output layer; the rest of
the CVAE is frozen with ``eqx.partition``. Randomness (the UE draw and the channel) is fixed over
the iterations (common random numbers), so the loss is a deterministic function of the trained
parameters.

Loss over the cells in ``train_cells`` and the KPI names in ``targets``:

    L = sum_k mean_{c in train} ((kpi_k(c) - target_k(c)) / s_k)^2,  s_k = mean_c |target_k(c)|.
"""

from __future__ import annotations

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import optax
from jaxtyping import Array, Bool, Float, PRNGKeyArray

from .cvae import CVAE, UEBehaviour, sample

KpiFn = Callable[[object], dict[str, Float[Array, " cells"]]]
# TR 38.901 Table 7.8-1 UE height outdoors; indoor UEs are put at the same height (a
# simplification: the floor draw of Table 7.4.1-1 note is not reproduced here).
UE_HEIGHT_M = 1.5


def place_ues(
    key: PRNGKeyArray, behaviour: UEBehaviour, topology
) -> tuple[object, Float[Array, " ues"]]:
    """Turn per-cell polar behaviour ``[cells, ues_per_cell]`` into `dtwin.geometry.UEs`.

    Position of UE j of cell c: ``site(c) + d (cos(phi_c + a), sin(phi_c + a))`` with ``phi_c`` the
    cell boresight (degrees counter-clockwise from east). Indoor UEs get ``d_2D-in =
    min(U(0, 25), U(0, 25))`` m (TR 38.901 Table 7.4.3-2 note) and the low-loss O2I model.

    Returns:
        ``(ues, demand_mbps)``, both flattened cell-major to ``[cells * ues_per_cell]``.
    """
    from dtwin.geometry import UEs

    cells, n = behaviour.distance_2d_m.shape
    if cells != topology.n_cells:
        raise ValueError(f"place_ues: behaviour has {cells} cells, topology has {topology.n_cells}")
    phi = jnp.deg2rad(topology.cell_azimuth_deg[:, None] + behaviour.angle_deg)
    site = topology.cell_xy_m[:, None, :]
    xy = site + behaviour.distance_2d_m[..., None] * jnp.stack([jnp.cos(phi), jnp.sin(phi)], -1)
    indoor = behaviour.indoor.reshape(-1)
    u = jr.uniform(key, (2, cells * n), maxval=25.0)
    ues = UEs(
        xy_m=xy.reshape(-1, 2).astype(jnp.float32),
        h_m=jnp.full((cells * n,), UE_HEIGHT_M, jnp.float32),
        indoor=indoor,
        d2d_in_m=jnp.where(indoor, jnp.min(u, axis=0), 0.0).astype(jnp.float32),
        high_loss=jnp.zeros((cells * n,), bool),
    )
    return ues, behaviour.demand_mbps.reshape(-1)


def sample_cells(
    key: PRNGKeyArray,
    model: CVAE,
    contexts: Float[Array, "cells features"],
    n_ues_per_cell: int,
    *,
    cell_range_m: float,
    min_distance_m: float = 10.0,
    temperature: float = 0.5,
) -> UEBehaviour:
    """`dtwin.ue.cvae.sample` for every cell (one context row each), ``[cells, ues]`` fields."""
    keys = jr.split(key, contexts.shape[0])
    return jax.vmap(
        lambda k, c: sample(
            k,
            model,
            c,
            n_ues_per_cell,
            cell_range_m=cell_range_m,
            min_distance_m=min_distance_m,
            temperature=temperature,
        )
    )(keys, contexts)


def generate_population(
    key: PRNGKeyArray,
    model: CVAE,
    topology,
    contexts: Float[Array, "cells features"],
    n_ues_per_cell: int,
    *,
    cell_range_m: float,
    min_distance_m: float = 10.0,
    transform: Callable[[UEBehaviour], UEBehaviour] | None = None,
):
    """Sample every cell's UEs and build a `dtwin.network.UEPopulation` (weight 1).

    Args:
        transform: optional map applied to the sampled behaviour (e.g. a known distortion to
            make synthetic targets).
    """
    from dtwin.network import UEPopulation

    k_s, k_p = jr.split(key)
    beh = sample_cells(
        k_s,
        model,
        contexts,
        n_ues_per_cell,
        cell_range_m=cell_range_m,
        min_distance_m=min_distance_m,
    )
    if transform is not None:
        beh = transform(beh)
    ues, demand = place_ues(k_p, beh, topology)
    return UEPopulation(ues, demand.astype(jnp.float32), jnp.ones_like(demand, jnp.float32))


def result_kpis(population, result) -> dict[str, Float[Array, " cells"]]:
    """The PM counters the closed loop matches, from a `dtwin.network.NetworkResult`.

    With ``p_uc`` the serving probability and ``w_u`` the UE weight (definitions of
    `dtwin.schema`):

    * ``active_ues`` = ``n_c = sum_u p_uc w_u``;
    * ``dl_throughput_mbps`` = ``sum_u p_uc w_u thr_u / n_c`` (mean UE throughput);
    * ``prb_utilization`` = the network model's PRB utilisation.
    """
    p = result.serving_prob * population.weight[:, None]
    n = jnp.sum(p, axis=0)
    thr = jnp.sum(p * result.throughput_mbps[:, None], axis=0) / jnp.maximum(n, 1e-6)
    return {"prb_utilization": result.prb_utilization, "dl_throughput_mbps": thr, "active_ues": n}


def network_kpi_fn(
    network, cm: dict, channel_key: PRNGKeyArray, *, temperature_db: float = 1.0
) -> KpiFn:
    """KPIs (`result_kpis`) of a population in ``network`` under ``cm``.

    The channel (LOS, shadowing, O2I) is drawn with the fixed ``channel_key`` by
    `dtwin.network.draw_channel`, then `dtwin.network.simulate` (soft association) is run.
    """
    from dtwin.network import draw_channel, simulate

    def kpi_fn(population):
        channel = draw_channel(channel_key, network, population)
        result = simulate(network, population, channel, cm, temperature_db=temperature_db)
        return result_kpis(population, result)

    return kpi_fn


def kpi_loss(
    kpis: dict[str, Float[Array, " cells"]],
    targets: dict[str, Float[Array, " cells"]],
    cell_mask: Bool[Array, " cells"],
) -> Float[Array, ""]:
    """``sum_k mean_{c in mask} ((kpi_k - target_k) / mean|target_k|)^2`` over ``targets``' keys."""
    w = cell_mask.astype(jnp.float32)
    total = 0.0
    for name, tgt in targets.items():
        scale = jnp.sum(jnp.abs(tgt) * w) / jnp.sum(w) + 1e-6
        total = total + jnp.sum(((kpis[name] - tgt) / scale) ** 2 * w) / jnp.sum(w)
    return total


def relative_kpi_error(
    kpis: dict[str, Float[Array, " cells"]],
    targets: dict[str, Float[Array, " cells"]],
    cell_mask: Bool[Array, " cells"],
) -> dict[str, Float[Array, ""]]:
    """Per KPI: ``sum_c |kpi - target| / sum_c |target|`` over the masked cells."""
    w = cell_mask.astype(jnp.float32)
    return {
        k: jnp.sum(jnp.abs(kpis[k] - t) * w) / (jnp.sum(jnp.abs(t) * w) + 1e-9)
        for k, t in targets.items()
    }


def decoder_head_filter(model: CVAE):
    """Filter spec: True on the decoder's output layer (weight and bias), False elsewhere."""
    spec = jax.tree_util.tree_map(lambda _: False, model)
    return eqx.tree_at(
        lambda m: (m.decoder.layers[-1].weight, m.decoder.layers[-1].bias), spec, (True, True)
    )


class RefineResult(eqx.Module):
    """Refined model and the loss per iteration."""

    model: CVAE
    losses: Float[Array, " steps"]


def refine(
    key: PRNGKeyArray,
    model: CVAE,
    topology,
    contexts: Float[Array, "cells features"],
    targets: dict[str, Float[Array, " cells"]],
    kpi_fns: list[KpiFn] | KpiFn,
    train_cells: Bool[Array, " cells"],
    *,
    n_ues_per_cell: int,
    cell_range_m: float,
    min_distance_m: float = 10.0,
    steps: int = 100,
    learning_rate: float = 1e-2,
    filter_spec=None,
) -> RefineResult:
    """Gradient-based refinement of the UE generator against per-cell KPI targets.

    Args:
        key: PRNG key of the UE draws (fixed over iterations; one per KPI function).
        model: the trained CVAE (only ``filter_spec`` leaves are trained; default the decoder's
            output layer, `decoder_head_filter`).
        topology: `dtwin.geometry.Topology` of the network.
        contexts: ``[cells, features]`` context of each cell.
        targets: per-cell targets, ``name -> [cells]`` (names produced by the KPI functions).
        kpi_fns: one or several ``population -> kpi dict`` (e.g. `network_kpi_fn` with several
            channel keys: snapshots averaged in the loss).
        train_cells: ``bool[cells]`` cells that enter the loss; the others are held out.
        n_ues_per_cell, cell_range_m, min_distance_m: as in `generate_population`.
        steps, learning_rate: Adam iterations and step size.

    Raises:
        ValueError: on a target of the wrong shape or no training cell.
    """
    if callable(kpi_fns):
        kpi_fns = [kpi_fns]
    n_cells = contexts.shape[0]
    for name, t in targets.items():
        if jnp.shape(t) != (n_cells,):
            raise ValueError(
                f"refine: target {name!r} must have shape [{n_cells}], got {jnp.shape(t)}"
            )
    if train_cells.shape != (n_cells,) or not bool(jnp.any(train_cells)):
        raise ValueError("refine: train_cells must be a bool[cells] mask with at least one cell")
    spec = decoder_head_filter(model) if filter_spec is None else filter_spec
    trainable, frozen = eqx.partition(model, spec)
    keys = list(jr.split(key, len(kpi_fns)))

    def loss_fn(p):
        m = eqx.combine(p, frozen)
        total = 0.0
        for k, fn in zip(keys, kpi_fns, strict=True):
            pop = generate_population(
                k,
                m,
                topology,
                contexts,
                n_ues_per_cell,
                cell_range_m=cell_range_m,
                min_distance_m=min_distance_m,
            )
            total = total + kpi_loss(fn(pop), targets, train_cells)
        return total / len(kpi_fns)

    optimizer = optax.adam(learning_rate)
    opt_state = optimizer.init(trainable)

    @eqx.filter_jit
    def step(p, s):
        loss, g = eqx.filter_value_and_grad(loss_fn)(p)
        u, s = optimizer.update(g, s, p)
        return eqx.apply_updates(p, u), s, loss

    losses = []
    for _ in range(steps):
        trainable, opt_state, loss = step(trainable, opt_state)
        losses.append(loss)
    return RefineResult(eqx.combine(trainable, frozen), jnp.stack(losses))


def evaluate(
    key: PRNGKeyArray,
    model: CVAE,
    topology,
    contexts: Float[Array, "cells features"],
    kpi_fn: KpiFn,
    *,
    n_ues_per_cell: int,
    cell_range_m: float,
    min_distance_m: float = 10.0,
    transform: Callable[[UEBehaviour], UEBehaviour] | None = None,
) -> dict[str, Float[Array, " cells"]]:
    """Per-cell KPIs of one generated population (``transform`` as in `generate_population`)."""
    pop = generate_population(
        key,
        model,
        topology,
        contexts,
        n_ues_per_cell,
        cell_range_m=cell_range_m,
        min_distance_m=min_distance_m,
        transform=transform,
    )
    return kpi_fn(pop)
