"""Trainable parameter counts on a random-weight ViT-B-16-quickgelu equal the ones stated in each
learner's docstring and the README (official counts where the method has released code; docs/methods.md).
Every registered learner must have a row here: a new learner without one fails."""

import pytest

from mmprompt_lab.learners import create_learner, list_learners

EXPECTED = {
    ("zeroshot", ()): 0,
    ("coop", ()): 8_192,
    ("cocoop", ()): 35_360,
    ("vpt", ()): 73_728,
    ("ivlp", ()): 23_040,
    ("ivlp", (("text_depth", 12), ("vision_depth", 12))): 30_720,  # released 2+2ctx config
    # deep language prompting (config ..._4ctx_language_only)
    ("ivlp", (("n_ctx_text", 4), ("text_depth", 12), ("vision_depth", 0), ("n_ctx_vision", 0))): 24_576,
    ("maple", ()): 3_555_072,
    ("upt", ()): 566_400,
    ("upt", (("n_ctx", 16),)): 683_136,
    ("dcp", ()): 11_048_448,
    ("mudpt", ()): 1_204_736,
    ("mudpt", (("n_ctx", 4),)): 1_227_776,
    ("mudpt", (("fusion", "transformer"),)): 11_056_128,
    ("map_dafe", ()): 939_648,
    ("map_dafe", (("gate", "input"),)): 7_755_392,
    ("map_dafe", (("gate", "convex"),)): 929_424,
    ("kgcoop", ()): 2_048,
    ("promptsrc", ()): 46_080,
}
# ToyCLIP (text 64 / vision 96 wide, 4 blocks each; depths 9 of 12 scale to 3), default options
TOYCLIP_EXPECTED = {"kgcoop": 4 * 64, "promptsrc": 3 * 4 * 64 + 3 * 4 * 96}  # 256, 1,920


def test_every_registered_learner_has_an_expected_count():
    missing = [name for name in list_learners() if (name, ()) not in EXPECTED]
    assert not missing, f"no expected trainable count (defaults, ViT-B/16) for {missing}; add a row to EXPECTED"


@pytest.mark.parametrize("name,overrides", list(EXPECTED))
def test_trainable_counts(name, overrides, vit_b16):
    assert name in list_learners(), f"{name!r} has an expected count but is not registered"
    learner = create_learner(name, vit_b16, ["cat", "dog", "sea lion"], **dict(overrides))
    assert learner.num_trainable() == EXPECTED[(name, overrides)]


@pytest.mark.parametrize("name", list(TOYCLIP_EXPECTED))
def test_trainable_counts_on_toyclip(name):
    from mmprompt_lab.backbone import load_clip

    learner = create_learner(name, load_clip("toyclip", device="cpu"), ["cat", "dog", "sea lion"])
    assert learner.num_trainable() == TOYCLIP_EXPECTED[name]
