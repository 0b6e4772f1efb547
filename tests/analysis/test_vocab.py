"""Nearest vocabulary words of learned context vectors."""

import pytest
import torch

from mmprompt_lab.analysis.vocab import learned_context, nearest_words, vocab_figure
from mmprompt_lab.learners import create_learner


def _ids(clip, words):
    return [clip.tokenizer.encode(w)[0] for w in words]


def test_exact_word_vectors_find_themselves(tiny_clip):
    words = ["photo", "star", "circle"]
    table = tiny_clip.text.token_embedding.weight
    vectors = table[_ids(tiny_clip, words)].detach() + 1e-4  # a hair off the word itself
    for metric in ("euclidean", "cosine"):
        found = nearest_words(tiny_clip, vectors, k=3, metric=metric)
        assert [f[0][0] for f in found] == words
        assert all(len(f) == 3 for f in found)


def test_unused_rows_are_skipped():
    class Tok:
        decoder = {0: "zero</w>", 1: "one</w>", 2: "two</w>"}

    class Clip:
        tokenizer = Tok()
        text = torch.nn.Module()

    clip = Clip()
    clip.text.token_embedding = torch.nn.Embedding(3, 2)
    with torch.no_grad():
        clip.text.token_embedding.weight.copy_(torch.tensor([[0.0, 0], [5, 0], [0, 5]]))
    near = nearest_words(clip, torch.tensor([[0.1, 0.0]]), k=1)  # zero row is nearest but unused
    assert near[0][0][0] == "one"
    assert nearest_words(clip, torch.tensor([[0.1, 0.0]]), k=1, skip_unused=False)[0][0][0] == "zero"


def test_learned_context_of_coop_is_its_ctx(tiny_clip):
    learner = create_learner("coop", tiny_clip, ["circle", "star"], n_ctx=4)
    ctx = learned_context(learner)
    assert torch.equal(ctx, learner.ctx.detach())
    fig = vocab_figure(nearest_words(tiny_clip, ctx, k=2))
    assert len(fig.data[0].cells.values) == 3  # ctx column + 2 neighbours


def test_learned_context_reads_the_declared_capabilities(tiny_clip):
    names = ["circle", "star"]
    upt = create_learner("upt", tiny_clip, names)
    with torch.no_grad():
        mixed, _ = upt.mix()
    torch.testing.assert_close(learned_context(upt, row=1), mixed, rtol=0, atol=0)  # the mixer's output
    cocoop = create_learner("cocoop", tiny_clip, names)  # image-conditioned: the shared context
    assert torch.equal(learned_context(cocoop), cocoop.ctx.detach())
    with pytest.raises(ValueError, match="no learnable text context"):
        learned_context(create_learner("vpt", tiny_clip, names))
