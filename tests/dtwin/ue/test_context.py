import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dtwin.ue.context import (
    AREA_TYPES,
    N_CONTEXT_FEATURES,
    Context,
    context_features,
    stack_contexts,
)


def test_features_closed_form():
    c = Context("suburban", ue_density_per_km2=999.0, indoor_ratio=0.65, hour=6, day_of_week=2)
    f = c.to_features()
    chex.assert_shape(f, (N_CONTEXT_FEATURES,))
    chex.assert_type(f, jnp.float32)
    expected = [
        0,
        0,
        1,
        0,
        3.0 / 4.0,
        0.65,
        1.0,
        0.0,
        math.sin(4 * math.pi / 7),
        math.cos(4 * math.pi / 7),
    ]
    np.testing.assert_allclose(f, expected, atol=1e-6)


def test_hour_is_cyclic():
    a = Context("urban", 10.0, 0.5, hour=23.999).to_features()
    b = Context("urban", 10.0, 0.5, hour=0.0).to_features()
    np.testing.assert_allclose(a, b, atol=1e-3)


@pytest.mark.parametrize(
    "field, value, match",
    [
        ("area_type", "downtown", "area_type"),
        ("ue_density_per_km2", -1.0, "ue_density_per_km2"),
        ("ue_density_per_km2", float("nan"), "ue_density_per_km2.*NaN"),
        ("indoor_ratio", 1.5, "indoor_ratio"),
        ("hour", 24, "hour"),
        ("hour", -1, "hour"),
        ("day_of_week", 7, "day_of_week"),
    ],
)
def test_validation_names_the_field(field, value, match):
    kw = dict(area_type="urban", ue_density_per_km2=100.0, indoor_ratio=0.8, hour=12, day_of_week=0)
    kw[field] = value
    with pytest.raises(ValueError, match=match):
        Context(**kw)


def test_jit_vmap_grad():
    c = Context("metro", 5000.0, 0.8, 18.5, 5)
    np.testing.assert_allclose(jax.jit(lambda c: c.to_features())(c), c.to_features(), atol=1e-6)
    batch = jax.vmap(context_features)(
        jnp.arange(4), jnp.full(4, 100.0), jnp.full(4, 0.5), jnp.arange(4.0), jnp.zeros(4)
    )
    chex.assert_shape(batch, (4, N_CONTEXT_FEATURES))
    np.testing.assert_allclose(batch[:, :4], np.eye(len(AREA_TYPES)))
    g = jax.grad(lambda h: context_features(0, 1.0, 0.5, h, 0.0)[6])(3.0)
    np.testing.assert_allclose(g, 2 * math.pi / 24 * math.cos(2 * math.pi * 3 / 24), rtol=1e-5)
    chex.assert_shape(stack_contexts([c, c]), (2, N_CONTEXT_FEATURES))
    with pytest.raises(ValueError, match="empty"):
        stack_contexts([])
