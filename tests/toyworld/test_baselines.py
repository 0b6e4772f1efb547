"""No shape or pattern suite can be solved from colour statistics alone."""

import numpy as np
import pytest

from mmprompt_lab.toyworld import SUITES
from mmprompt_lab.toyworld.baselines import colour_baseline, colour_features


def test_colour_features_shape():
    x = np.random.default_rng(0).integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
    f = colour_features(x)
    assert f.shape == (5, 67) and np.allclose(f[:, :64].sum(1), 1)


@pytest.mark.parametrize("name", ["polygons", "patterns", "clutter"])
def test_colour_alone_stays_near_chance(name):
    chance = 1 / len(SUITES[name].classes)
    assert colour_baseline(name) < 2 * chance
