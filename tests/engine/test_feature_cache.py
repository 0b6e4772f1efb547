"""`fit(cache_views=K)`: cached frozen image features of K augmented views (docs/design.md §7)."""

import pytest
import torch

from mmprompt_lab.engine import fit
from mmprompt_lab.engine.train import cache_image_features, image_features_cacheable, view_seed
from mmprompt_lab.transforms import train_transform
from mmprompt_lab.learners import create_learner, list_learners
from mmprompt_lab.learners.base import ImageFeatures
from tests.engine.test_engine import COLOURS, blobs


def _coop(tiny_clip):
    torch.manual_seed(0)
    return create_learner("coop", tiny_clip, list(COLOURS), n_ctx=4)


def _run(tiny_clip, epochs=3, **kw):
    learner = _coop(tiny_clip)
    history = fit(learner, blobs(), epochs=epochs, batch_size=8, lr=0.05, seed=3, progress=False, cache_views=3, **kw)
    return learner, history


def test_cached_features_are_the_image_tower_on_those_exact_views(tiny_clip):
    learner = _coop(tiny_clip)
    data = blobs().with_transform(train_transform(tiny_clip, "toy"))
    cache = cache_image_features(learner, data, 2, seed=3, batch_size=5, device=torch.device("cpu"))
    assert cache.shape == (2, len(data), tiny_clip.embed_dim)
    with torch.no_grad():
        for k in range(2):
            torch.manual_seed(view_seed(3, k))  # view k: drawn item by item, in order, under its seed
            images = torch.stack([data[n][0] for n in range(len(data))])  # (N, 3, H, W)
            torch.testing.assert_close(cache[k], learner.clip.encode_image(images), rtol=1e-5, atol=1e-6)
    assert not torch.allclose(cache[0], cache[1])  # two views are two augmentations


def test_cached_training_is_deterministic_and_learns(tiny_clip):
    a, ha = _run(tiny_clip)
    b, hb = _run(tiny_clip)
    assert ha.step_loss == hb.step_loss and len(ha.step_loss) == 3 * 3  # 24 images / batch 8
    torch.testing.assert_close(a.ctx, b.ctx, rtol=0, atol=0)
    assert not torch.equal(a.ctx, _coop(tiny_clip).ctx)
    other = fit(_coop(tiny_clip), blobs(), epochs=3, batch_size=8, lr=0.05, seed=4, progress=False, cache_views=3)
    assert other.step_loss != ha.step_loss  # another seed, other views and order


def test_cached_training_resumes_exactly(tiny_clip, tmp_path):
    full, h_full = _run(tiny_clip)
    _run(tiny_clip, checkpoint_dir=tmp_path, on_step=lambda s: setattr(s, "stop", s.step == 5))  # stopped in epoch 2
    resumed, h_res = _run(tiny_clip, checkpoint_dir=tmp_path)
    torch.testing.assert_close(resumed.ctx, full.ctx, rtol=0, atol=0)
    assert h_res.step_loss == h_full.step_loss


def test_cache_is_refused_where_it_cannot_be_exact(tiny_clip):
    maple = create_learner("maple", tiny_clip, list(COLOURS), depth=2)
    with pytest.raises(ValueError, match="image tower"):
        fit(maple, blobs(), epochs=1, progress=False, cache_views=2)
    for bad in (0, 2.5, True):
        with pytest.raises(ValueError, match="cache_views"):
            fit(_coop(tiny_clip), blobs(), epochs=1, progress=False, cache_views=bad)
    with pytest.raises(ValueError, match="cannot stand in"):
        maple(ImageFeatures(torch.zeros(2, tiny_clip.embed_dim)))


def test_cacheable_follows_the_declared_capabilities(tiny_clip):
    cacheable = {n for n in list_learners() if image_features_cacheable(create_learner(n, tiny_clip, list(COLOURS)))}
    assert {"zeroshot", "coop", "kgcoop"} <= cacheable
    assert not cacheable & {"cocoop", "vpt", "maple", "ivlp", "dcp", "upt", "mudpt", "map_dafe", "promptsrc"}
