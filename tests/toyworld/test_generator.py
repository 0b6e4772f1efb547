"""The ToyWorld generator: deterministic, complete, and captions that match their scenes."""

import numpy as np
import pytest

from mmprompt_lab.toyworld import (
    BACKGROUNDS,
    PATTERNS,
    SHAPES,
    STYLES,
    Obj,
    Scene,
    WorldSpec,
    caption,
    render,
    sample_scene,
)
from mmprompt_lab.toyworld.factors import HELD_OUT_COLOUR, SHAPE_SYNONYMS, plural
from mmprompt_lab.toyworld.world import PRETRAIN_WORLD


def _draw(seed: int, n: int = 12, size: int = 32):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        scene = sample_scene(rng, WorldSpec(styles=STYLES))
        out.append((np.asarray(render(scene, size, rng)).tobytes(), caption(scene, rng)))
    return out


def test_same_seed_gives_identical_images_and_captions():
    assert _draw(7) == _draw(7)


def test_different_seeds_differ():
    assert [b for b, _ in _draw(7)] != [b for b, _ in _draw(8)]


@pytest.mark.parametrize("size", [32, 64])
def test_render_size_and_mode(size):
    img = render(Scene((Obj("star", "red"),), "grass"), size, np.random.default_rng(0))
    assert img.size == (size, size) and img.mode == "RGB"


@pytest.mark.parametrize("shape", SHAPES)
def test_every_shape_is_visible_and_distinct_from_background(shape):
    plain = np.asarray(render(Scene((), "sand"), 32, np.random.default_rng(1)), float)
    img = np.asarray(render(Scene((Obj(shape, "blue", radius=0.6),), "sand"), 32, np.random.default_rng(1)), float)
    covered = (np.abs(img - plain).sum(-1) > 60).mean()
    assert 0.05 < covered < 0.9, (shape, covered)


def test_every_factor_renders():
    rng = np.random.default_rng(0)
    for style in STYLES:
        for bg in BACKGROUNDS:
            images = [
                np.asarray(render(Scene((Obj("fish", "pink", pat, "black"),), bg, style), 32, rng)) for pat in PATTERNS
            ]
            assert all(im.shape == (32, 32, 3) and im.std() > 0 for im in images), (style, bg)
            assert len({im.tobytes() for im in images}) > 1, (style, bg)  # the factor shows in the pixels


def test_patterns_change_the_object():
    base = np.asarray(
        render(Scene((Obj("square", "red", "plain", "white", radius=0.8),), "night"), 32, np.random.default_rng(0))
    )
    for pat in PATTERNS[1:]:
        img = np.asarray(
            render(Scene((Obj("square", "red", pat, "white", radius=0.8),), "night"), 32, np.random.default_rng(0))
        )
        assert (img != base).any(axis=-1).mean() > 0.1, pat


def test_captions_name_the_object_or_an_attribute():
    rng = np.random.default_rng(3)
    for _ in range(300):
        scene = sample_scene(rng)
        obj = scene.objects[0]
        text = caption(scene, rng)
        nouns = SHAPE_SYNONYMS.get(obj.shape, [obj.shape])
        named = any(w in text for n in nouns for w in (n, plural(n)))
        attribute_only = text.endswith(("shape.", "object.", "thing.")) or text == f"a photo of the {scene.background}."
        assert named or attribute_only, (obj.shape, text)
        if len(scene.objects) > 1 and named:
            assert any(plural(n) in text for n in nouns), text


def test_caption_name_p_names_the_object_that_often_and_leaves_the_default_stream_alone():
    def texts(name_p):
        rng = np.random.default_rng(5)
        out = []
        for _ in range(1000):
            scene = sample_scene(rng)
            nouns = SHAPE_SYNONYMS.get(scene.objects[0].shape, [scene.objects[0].shape])
            text = caption(scene, rng) if name_p is None else caption(scene, rng, name_p)
            out.append((text, any(w in text.split() or w + "." in text.split() for n in nouns for w in (n, plural(n)))))
        return out

    default, explicit, weak = texts(None), texts(1.0), texts(0.4)
    assert default == explicit  # name_p=1 draws nothing extra: same captions, same RNG stream
    named = np.mean([n for _, n in default]), np.mean([n for _, n in weak])
    assert named[0] > 0.75 and 0.3 < named[1] / named[0] < 0.5, named  # ≈ 0.4 of the default
    assert any(" thing" in t or " object" in t for t, n in weak if not n)  # a generic noun instead


def test_pretraining_world_holds_out_compositions_and_styles():
    rng = np.random.default_rng(0)
    scenes = [sample_scene(rng, PRETRAIN_WORLD) for _ in range(2000)]
    for scene in scenes:
        assert scene.style == "photo"
        assert HELD_OUT_COLOUR[scene.objects[0].shape] != scene.objects[0].colour
    assert 0.25 < np.mean([s.bg_hue != 0 for s in scenes]) < 0.35  # 30 % hue-rotated backgrounds


def test_background_hue_rotates_the_background_only():
    obj = Obj("square", "red", radius=0.5)
    plain = np.asarray(render(Scene((obj,), "grass"), 32, np.random.default_rng(3)), float)
    turned = np.asarray(render(Scene((obj,), "grass", bg_hue=2.0), 32, np.random.default_rng(3)), float)
    centre, corner = (slice(13, 19), slice(13, 19)), (slice(0, 4), slice(0, 4))
    assert np.array_equal(plain[centre], turned[centre])  # the red square keeps its colour
    assert np.abs(plain[corner] - turned[corner]).mean() > 30  # the green grass does not
    assert abs(plain[corner].mean() - turned[corner].mean()) < 12  # brightness is (nearly) kept


def test_background_hue_is_drawn_only_when_asked():
    """Specs without bg_hue consume no extra randomness: their scenes stay byte-identical."""
    a, b = np.random.default_rng(5), np.random.default_rng(5)
    assert all(sample_scene(a).bg_hue == 0.0 for _ in range(50))
    turned = [sample_scene(b, WorldSpec(bg_hue=1.0)) for _ in range(50)]
    assert all(s.bg_hue != 0.0 for s in turned)


def test_pattern_scale_makes_the_pattern_coarser():
    """A pattern_scale of 2 doubles the stripe period: about half as many colour changes per column."""

    def changes(scale: float, seed: int) -> float:
        obj = Obj("square", "red", "striped", "white", radius=0.9, pattern_scale=scale)
        img = np.asarray(render(Scene((obj,), "snow"), 128, np.random.default_rng(seed)), float)
        inside = img[24:104, 24:104, 1] > 128  # green channel: white stripes vs red ground
        return np.abs(np.diff(inside, axis=0)).sum() / inside.shape[1]  # stripes are horizontal

    fine = sum(changes(1.0, seed) for seed in range(4))
    coarse = sum(changes(2.0, seed) for seed in range(4))
    assert fine >= 4 * 4 and 0.35 < coarse / fine < 0.65


def test_pattern_scale_is_drawn_only_when_asked():
    """Specs without pattern_scale consume no extra randomness: their scenes stay byte-identical."""
    a, b = np.random.default_rng(7), np.random.default_rng(7)
    spec = WorldSpec(pattern_scale=(1.5, 2.0))
    plain = [sample_scene(a) for _ in range(50)]
    scaled = [sample_scene(b, spec) for _ in range(50)]
    assert all(o.pattern_scale == 1.0 for s in plain for o in s.objects)
    assert all(1.5 <= o.pattern_scale <= 2.0 for s in scaled for o in s.objects)
    assert plain[0].objects[0].shape == scaled[0].objects[0].shape  # same draws up to the last one
