"""MAP-DAFE (our design): zero gates = plain deep prompting, the template never reads the prompts,
gate variants, the documented trainable count."""

import re

import pytest
import torch
import torch.nn.functional as F

from mmprompt_lab.learners import create_learner, map_dafe
from mmprompt_lab.learners.prompts import replace_slots
from tests.conftest import CLASSNAMES


def make(clip, seed=0, **overrides):
    torch.manual_seed(seed)
    return create_learner("map_dafe", clip, CLASSNAMES, **{"depth": 3, **overrides})


def deep_prompting_states(learner, images):
    """Plain deep prompting with the same P_l, written without DAFE: slots ← P_l before blocks 1..J-1.
    → final text states (C, L, Dt), vision states (B, T, Dv)."""
    clip, cfg, tok = learner.clip, learner.config, learner.prompts
    n_v = cfg.n_ctx_vision
    t = torch.cat([tok.embeddings[c : c + 1] for c in range(len(tok.classnames))])  # (C, L, Dt)
    for c in range(t.shape[0]):
        t[c, tok.slots[c]] = learner.ctx
    t = t + clip.text.positional_embedding
    v = clip.ln_pre(torch.cat([clip.embed_image(images), learner.vision_ctx.expand(len(images), -1, -1)], 1))
    for i in range(max(clip.text_depth, clip.vision_depth)):
        if 1 <= i < cfg.depth:
            t = replace_slots(t, tok.slots, learner.deep_text[i - 1].expand(t.shape[0], -1, -1))
            v = torch.cat([v[:, :-n_v], learner.deep_vision[i - 1].expand(len(images), -1, -1)], 1)
        if i < clip.text_depth:
            t = clip.text_blocks[i](t, attn_mask=clip.text.attn_mask)
        if i < clip.vision_depth:
            v = clip.vision_blocks[i](v)
    return t, v


def learner_states(learner, images):
    state = learner.begin_pass()
    text, mask = learner.clip.start_text(*learner.text_prompts(state))
    return learner.clip.run(text, learner.vision_input(images, state), learner.hook(state), text_mask=mask)


def test_zero_gates_equal_plain_deep_prompting(tiny_clip, images):
    exact, default = make(tiny_clip, gate_init=0.0).eval(), make(tiny_clip).eval()
    with torch.no_grad():
        for learner, same in ((exact, True), (default, False)):
            (t, v), (rt, rv) = learner_states(learner, images), deep_prompting_states(learner, images)
            rt = rt[:, : t.shape[1]]  # the learner cuts the text after the last EOT (exact: causal)
            if same:
                torch.testing.assert_close(t, rt, rtol=1e-5, atol=1e-5)
                torch.testing.assert_close(v, rv, rtol=1e-5, atol=1e-5)
            else:
                assert not torch.allclose(t, rt, atol=1e-4) and not torch.allclose(v, rv, atol=1e-4)


def test_layout_prompts_after_template_before_eot(tiny_clip):
    tok = make(tiny_clip).prompts
    lengths = {len(tiny_clip.tokenizer.encode(f"a photo of a {c.replace('_', ' ')}.")) for c in CLASSNAMES}
    assert len(lengths) > 1  # class names of different lengths: the slots differ per class
    for c, name in enumerate(CLASSNAMES):
        template = tiny_clip.tokenizer.encode(f"a photo of a {name.replace('_', ' ')}.")
        assert tok.tokens[c, 1 : 1 + len(template)].tolist() == template
        assert tok.slots[c].tolist() == list(range(1 + len(template), 1 + len(template) + 4))
        assert tok.eot[c] == tok.slots[c, -1] + 1


def test_template_states_are_zero_shot_clips(tiny_clip):
    """Causal mask: the template never reads the prompts (unidirectional), at every layer."""
    learner = make(tiny_clip).eval()
    tokens = tiny_clip.tokenize([f"a photo of a {c.replace('_', ' ')}." for c in CLASSNAMES])

    def states(embeddings, eot, hook):
        seen = []

        def record(i, t, v):
            t, v = hook(i, t, v)
            seen.append(t)
            return t, v

        x, mask = tiny_clip.start_text(embeddings, eot)
        return seen + [tiny_clip.run(x, None, record, text_mask=mask)[0]]  # every block input, final output

    with torch.no_grad():
        state = learner.begin_pass()
        ours = states(*learner.text_prompts(state), learner.hook(state))
        zero = states(tiny_clip.token_embedding(tokens), tokens.argmax(-1), lambda i, t, v: (t, v))
        for a, b in zip(ours, zero, strict=True):
            for c in range(len(CLASSNAMES)):
                first = int(learner.prompts.slots[c, 0])
                torch.testing.assert_close(a[c, :first], b[c, :first], rtol=1e-5, atol=1e-5)
        before = learner.encode_text()  # while the EOT feature does read the prompts (weakly in this
        learner.ctx.add_(1.0)  # random tiny tower, ~1e-6, so exact comparison; CoOp is alike)
        assert not torch.equal(before, learner.encode_text())


@pytest.mark.parametrize("gate", ["channel", "input", "convex"])
def test_gates_train_every_tensor(tiny_clip, images, gate):
    learner = make(tiny_clip, gate=gate).train()
    F.cross_entropy(learner(images), torch.tensor([0, 1, 2])).backward()
    dead = [n for n, p in learner.named_parameters() if p.requires_grad and (p.grad is None or not p.grad.abs().sum())]
    assert not dead


def test_exact_zero_gate_leaves_phi_without_gradient_at_step_0(tiny_clip, images):
    """Why gate_init defaults to 0.01: with g = 0 exactly, φ is dead until g has moved."""
    learner = make(tiny_clip, gate_init=0.0).train()
    F.cross_entropy(learner(images), torch.tensor([0, 1, 2])).backward()
    for name, p in learner.named_parameters():
        if "_dafe." in name:
            assert (p.grad.abs().sum() > 0) == name.endswith(".gate"), name


def test_gate_starts(tiny_clip):
    learner = make(tiny_clip, gate="convex", gate_init=0.05)
    assert torch.sigmoid(learner.text_dafe[0].gate).item() == pytest.approx(0.05)
    learner = make(tiny_clip, gate="input", gate_init=0.05)
    assert torch.sigmoid(learner.vision_dafe[1].gate.bias).allclose(torch.tensor(0.05))
    with pytest.raises(ValueError, match="gate_init"):
        make(tiny_clip, gate="convex", gate_init=0.0)
    with pytest.raises(ValueError, match="gate must be one of"):
        make(tiny_clip, gate="scalar")


def test_documented_trainable_count(vit_b16):
    documented = re.search(r"Trainable \(ViT-B/16, defaults\): ([\d,]+)", map_dafe.__doc__).group(1)
    learner = create_learner("map_dafe", vit_b16, ["cat", "dog"])
    assert learner.num_trainable() == int(documented.replace(",", ""))
