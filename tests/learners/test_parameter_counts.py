"""Trainable parameter counts on a random-weight ViT-B-16-quickgelu equal the official ones
(docs/methods.md)."""
import pytest

from mmprompt_lab.learners import create_learner, list_learners

OFFICIAL = {
    ("zeroshot", ()): 0,
    ("coop", ()): 8_192,
    ("cocoop", ()): 35_360,
    ("vpt", ()): 73_728,
    ("ivlp", ()): 23_040,
    ("ivlp", (("text_depth", 12), ("vision_depth", 12))): 30_720,  # released 2+2ctx config
    ("ivlp", (("n_ctx_text", 4), ("text_depth", 12), ("vision_depth", 0), ("n_ctx_vision", 0))): 24_576,  # deep language
    ("maple", ()): 3_555_072,
    ("upt", ()): 566_400,
    ("upt", (("n_ctx", 16),)): 683_136,
    ("dcp", ()): 11_048_448,
    ("mudpt", ()): 1_204_736,
    ("mudpt", (("n_ctx", 4),)): 1_227_776,
    ("mudpt", (("fusion", "transformer"),)): 11_056_128,
}


@pytest.mark.parametrize("name,overrides", [k for k in OFFICIAL if k[0] in list_learners()])
def test_official_trainable_counts(name, overrides, vit_b16):
    learner = create_learner(name, vit_b16, ["cat", "dog", "sea lion"], **dict(overrides))
    assert learner.num_trainable() == OFFICIAL[(name, overrides)]
