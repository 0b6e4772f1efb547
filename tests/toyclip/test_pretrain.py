"""A short run of the pretraining recipe learns, checkpoints atomically and resumes exactly."""

import importlib

import pytest
import torch

from mmprompt_lab.toyclip import PretrainConfig, create_toyclip, export_weights, pretrain
from mmprompt_lab.toyclip.model import build_model, get_tokenizer
from mmprompt_lab.toyclip.pretrain import AuxHeads, losses, make_batch

pretrain_module = importlib.import_module("mmprompt_lab.toyclip.pretrain")  # the package re-exports the function
TINY = dict(batch_size=16, lr=2e-3, warmup=2, decay_steps=4, threads=1, log_every=1)


def _clip_loss(model, batch, cfg) -> float:
    model.eval()
    with torch.no_grad():
        return losses(model, AuxHeads(model.text_projection.shape[1]), batch, cfg)["clip"].item()


def test_short_run_lowers_contrastive_loss(tmp_path):
    steps = 16
    cfg = PretrainConfig(steps=steps, batch_size=64, seed=123)
    held_out = make_batch(cfg, 0, get_tokenizer())  # a batch the run never sees (other seed)
    torch.manual_seed(0)
    before = _clip_loss(build_model(), held_out, cfg)  # the run's own initialisation (seed 0)
    history = pretrain(tmp_path, steps=steps, seed=0, ckpt_every=steps, **TINY)
    assert len(history) == steps and history[-1]["step"] == steps
    model, _, _ = create_toyclip(export_weights(tmp_path, tmp_path / "w.safetensors"))
    after = _clip_loss(model, held_out, cfg)
    assert after < before - 0.05, (before, after)


def test_resume_after_interruption_continues_the_same_run(tmp_path, monkeypatch):
    kw = dict(TINY, batch_size=8, steps=4, seed=0, ckpt_every=2)
    pretrain(tmp_path / "a", **kw)
    real = pretrain_module.make_batch

    def crash_at_3(cfg, step, tokenizer):
        if step == 3:
            raise KeyboardInterrupt
        return real(cfg, step, tokenizer)

    monkeypatch.setattr(pretrain_module, "make_batch", crash_at_3)
    with pytest.raises(KeyboardInterrupt):
        pretrain(tmp_path / "b", **kw)
    assert not list((tmp_path / "b").glob("*.tmp"))  # atomic: no half-written file left
    monkeypatch.setattr(pretrain_module, "make_batch", real)
    history = pretrain(tmp_path / "b", **kw)  # resumes at step 2
    assert [h["step"] for h in history] == [1, 2, 3, 4]
    a, _, _ = create_toyclip(export_weights(tmp_path / "a", tmp_path / "a.safetensors"))
    b, _, _ = create_toyclip(export_weights(tmp_path / "b", tmp_path / "b.safetensors"))
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(x, y), name


def test_resume_refuses_another_recipe(tmp_path):
    pretrain(tmp_path, **dict(TINY, batch_size=4, steps=1, ckpt_every=1))
    with pytest.raises(ValueError, match="different recipe"):
        pretrain(tmp_path, **dict(TINY, batch_size=4, steps=1, ckpt_every=1, lr=1e-4))


def test_unknown_recipe_key_is_named():
    with pytest.raises(ValueError, match="PretrainConfig has no option 'warmpu'.*'warmup'"):
        pretrain("unused", steps=1, warmpu=3)


@pytest.mark.parametrize("bad", [0.0, -0.5, 1.5])
def test_caption_name_p_outside_0_1_is_refused(bad):
    with pytest.raises(ValueError, match="caption_name_p must be in"):
        PretrainConfig(caption_name_p=bad)
