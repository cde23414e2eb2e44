"""Closed loop through the real network model: targets from a known, different UE distribution."""

import chex
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

pytest.importorskip("dtwin.network")

from dtwin.channel import UMa  # noqa: E402
from dtwin.geometry import hex_topology  # noqa: E402
from dtwin.network import Network  # noqa: E402
from dtwin.ue.closed_loop import (  # noqa: E402
    decoder_head_filter,
    evaluate,
    generate_population,
    kpi_loss,
    network_kpi_fn,
    refine,
    relative_kpi_error,
    sample_cells,
)
from dtwin.ue.context import Context  # noqa: E402
from dtwin.ue.cvae import CVAE  # noqa: E402

ISD_M = 500.0
RANGE_M = ISD_M / np.sqrt(3.0)
N_UES = 8


def _setup():
    topo = hex_topology(1, ISD_M, 25.0, 3, wrap=False)
    net = Network(topo, UMa())
    cm = {"tilt_deg": jnp.full(3, 6.0), "tx_power_dbm": jnp.full(3, 46.0), "cio_db": jnp.zeros(3)}
    ctx = jnp.stack([Context("urban", 1000.0, 0.8, h).to_features() for h in (8, 13, 19)])
    return topo, network_kpi_fn(net, cm, jr.key(1)), ctx


def _edge_and_heavy(b):
    """Known distortion: UEs pushed to the cell edge (r -> r^0.4) and 3x the demand."""
    r = (b.distance_2d_m - 10.0) / (RANGE_M - 10.0)
    return eqx.tree_at(
        lambda b: (b.distance_2d_m, b.demand_mbps),
        b,
        (10.0 + (RANGE_M - 10.0) * r**0.4, 3.0 * b.demand_mbps),
    )


def test_population_shapes():
    topo, _, ctx = _setup()
    pop = eqx.filter_jit(
        lambda m: generate_population(jr.key(0), m, topo, ctx, N_UES, cell_range_m=RANGE_M)
    )(CVAE(jr.key(0)))
    chex.assert_shape(pop.ues.xy_m, (3 * N_UES, 2))
    chex.assert_shape([pop.demand_mbps, pop.weight, pop.ues.h_m], (3 * N_UES,))
    d = jnp.linalg.norm(pop.ues.xy_m - topo.site_xy_m[0], axis=-1)
    assert bool(jnp.all((d >= 10.0 - 1e-3) & (d <= RANGE_M + 1e-3)))
    # Every UE lies in its own cell's 120-degree sector.
    ang = jnp.rad2deg(jnp.arctan2(pop.ues.xy_m[:, 1], pop.ues.xy_m[:, 0])).reshape(3, N_UES)
    rel = (ang - topo.cell_azimuth_deg[:, None] + 180.0) % 360.0 - 180.0
    assert bool(jnp.all(jnp.abs(rel) <= 60.0 + 1e-3))


def test_filter_freezes_all_but_decoder_head():
    spec = decoder_head_filter(CVAE(jr.key(0)))
    trainable = [x for x in jax.tree_util.tree_leaves(spec) if x]
    assert len(trainable) == 2


@pytest.mark.slow
def test_refinement_matches_targets_and_held_out_cell():
    topo, fn, ctx = _setup()
    model = CVAE(jr.key(0), width=32)
    key = jr.key(
        2
    )  # the same UE draw for targets and generator: the error is only the distribution
    ev = eqx.filter_jit(
        lambda m, tr: evaluate(
            key, m, topo, ctx, fn, n_ues_per_cell=N_UES, cell_range_m=RANGE_M, transform=tr
        )
    )
    targets = ev(model, _edge_and_heavy)
    train = jnp.array([True, True, False])
    before = ev(model, None)
    res = refine(
        key,
        model,
        topo,
        ctx,
        targets,
        fn,
        train,
        n_ues_per_cell=N_UES,
        cell_range_m=RANGE_M,
        steps=30,
        learning_rate=3e-2,
    )
    after = ev(res.model, None)
    loss_before, loss_after = kpi_loss(before, targets, train), kpi_loss(after, targets, train)
    held_before = kpi_loss(before, targets, ~train)
    held_after = kpi_loss(after, targets, ~train)
    print("train loss", loss_before, "->", loss_after, "held-out", held_before, "->", held_after)
    print(relative_kpi_error(before, targets, ~train), relative_kpi_error(after, targets, ~train))
    assert float(loss_after) < 0.3 * float(loss_before)
    assert float(held_after) < 0.6 * float(held_before)
    # Frozen parts unchanged.
    np.testing.assert_array_equal(
        res.model.encoder.layers[0].weight, model.encoder.layers[0].weight
    )
    np.testing.assert_array_equal(
        res.model.decoder.layers[0].weight, model.decoder.layers[0].weight
    )
    # The generator learnt the direction of the distortion: more demand, UEs further out.
    draw = eqx.filter_jit(lambda m: sample_cells(jr.key(3), m, ctx, 200, cell_range_m=RANGE_M))
    b0, b1 = draw(model), draw(res.model)
    assert float(jnp.median(b1.demand_mbps)) > 1.5 * float(jnp.median(b0.demand_mbps))


def test_refine_input_errors():
    topo, fn, ctx = _setup()
    model = CVAE(jr.key(0))
    with pytest.raises(ValueError, match="target 'prb_utilization'"):
        refine(
            jr.key(0),
            model,
            topo,
            ctx,
            {"prb_utilization": jnp.zeros(4)},
            fn,
            jnp.ones(3, bool),
            n_ues_per_cell=2,
            cell_range_m=RANGE_M,
            steps=1,
        )
    with pytest.raises(ValueError, match="train_cells"):
        refine(
            jr.key(0),
            model,
            topo,
            ctx,
            {"prb_utilization": jnp.zeros(3)},
            fn,
            jnp.zeros(3, bool),
            n_ues_per_cell=2,
            cell_range_m=RANGE_M,
            steps=1,
        )
