"""The shared prompt machinery (learners/prompts.py): slot layout, class names with template braces
(#17 item 7), context layouts and their explicit word-init flag, and the one-way imports."""

import ast
import pathlib

import pytest
import torch
import torch.nn.functional as F

import mmprompt_lab.learners as learners_pkg
from mmprompt_lab.learners import create_learner, get_learner_class, list_learners
from mmprompt_lab.learners.prompts import PromptTokens, coop_layout, deep_text_layout

TINY = {
    "maple": dict(depth=3),
    "ivlp": dict(text_depth=3, vision_depth=3),
    "vpt": dict(depth=3),
    "dcp": dict(depth=2),
    "mudpt": dict(depth=3),
    "map_dafe": dict(depth=3),
}
BRACES = ["{ctx}", "{}", "plain"]
PLAIN = ["x", "y", "plain"]


def test_braces_in_class_names_are_plain_text(tiny_clip):
    tok = tiny_clip.tokenizer
    names = ["{ctx}", "a {} b", "plain"]
    prompts = PromptTokens(tiny_clip, names, "{ctx} {} {ctx}.", [2, 2])
    x = tok.encode("X")
    for c, name in enumerate(names):
        words = tok.encode(name)
        expected = [tok.sot_token_id] + 2 * x + words + 2 * x + tok.encode(".") + [tok.eot_token_id]
        assert prompts.tokens[c, : len(expected)].tolist() == expected
        assert prompts.slots[c].tolist() == [1, 2, 3 + len(words), 4 + len(words)]
        assert int(prompts.eot[c]) == len(expected) - 1


def _text_learner(name, clip, classnames):
    return create_learner(name, clip, classnames, seed=5, **TINY.get(name, {})).eval()


@pytest.mark.parametrize("name", [n for n in list_learners() if n not in ("zeroshot", "vpt")])
def test_class_names_with_braces_keep_the_slots(name, tiny_clip, images):
    braces, plain = _text_learner(name, tiny_clip, BRACES), _text_learner(name, tiny_clip, PLAIN)
    assert braces.has_text_prompts
    a, b = braces.prompts, plain.prompts
    assert a.slots.shape == b.slots.shape  # same number of learnable slots for every class
    fill = a.tokens[2, a.slots[2]]
    for c in range(len(BRACES)):  # every class: its slots hold the fill words, and the name survives as text
        assert torch.equal(a.tokens[c, a.slots[c]], fill)
        literal = [t for k, t in enumerate(a.tokens[c, 1 : int(a.eot[c])].tolist(), 1) if k not in a.slots[c]]
        assert BRACES[c] in tiny_clip.tokenizer.decode(literal).replace(" ", "")  # decode spaces out BPE pieces
    assert torch.equal(a.tokens[2], b.tokens[2]) and torch.equal(a.slots[2], b.slots[2])
    # the text is cut after the longest EOT, so the two batches differ in length: equal up to rounding
    with torch.no_grad():
        if braces.conditional and braces.image_conditioned_text:  # per class and image: compare "plain"
            torch.testing.assert_close(
                braces.encode(images)[1][:, 2], plain.encode(images)[1][:, 2], rtol=1e-5, atol=1e-6
            )
        elif not braces.conditional:  # (dcp's "mean" fusing averages over the classes: slots only)
            torch.testing.assert_close(braces.encode_text()[2], plain.encode_text()[2], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["zeroshot", "vpt"])
def test_hand_templates_format_the_template_not_the_name(name, tiny_clip):
    learner = create_learner(name, tiny_clip, BRACES + ["sea_lion"], **TINY.get(name, {}))
    texts = [f"a photo of a {c}." for c in ("{ctx}", "{}", "plain", "sea lion")]
    expected = F.normalize(tiny_clip.model.encode_text(tiny_clip.tokenizer(texts)), dim=-1)
    torch.testing.assert_close(learner.encode_text(), expected, rtol=1e-5, atol=1e-6)


def test_layouts_declare_word_init(tiny_clip):
    coop = coop_layout(tiny_clip, "end", 16, "a photo of a")
    assert coop.word_initialised and coop.words == ("a", "photo", "of", "a") and coop.runs == (4,)
    middle = coop_layout(tiny_clip, "middle", 5, "")
    assert not middle.word_initialised and middle.runs == (2, 3) and middle.template == "{ctx} {} {ctx}."
    maple = deep_text_layout(tiny_clip, 2, "a photo of a")
    assert maple.word_initialised and maple.template == "{ctx} of a {}." and maple.words == ("a", "photo")
    long = deep_text_layout(tiny_clip, 6, "a photo of a")  # beyond 4 words: random init, "X" fill
    assert not long.word_initialised and long.words == ("X",) * 6 and long.template == "{ctx} {}."
    # a word "X" in the init phrase is still word initialisation (no sentinel on the fill words)
    x = coop_layout(tiny_clip, "end", 4, "X marks the spot")
    assert x.word_initialised and x.words[0] == "x"
    prompts = x.tokens(tiny_clip, ["circle"])
    torch.testing.assert_close(
        x.context(prompts, 4, tiny_clip.text_width).detach(),
        tiny_clip.token_embedding(torch.tensor(tiny_clip.tokenizer.encode("X marks the spot"))),
        rtol=0,
        atol=0,
    )


def test_no_learner_imports_another_learner():
    folder = pathlib.Path(learners_pkg.__file__).parent
    methods = {get_learner_class(n).__module__.rsplit(".", 1)[1] for n in list_learners()}  # modules that register
    for path in folder.glob("*.py"):
        if path.stem == "__init__":
            continue
        tree = ast.parse(path.read_text())
        imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.level == 1}
        assert not imported & methods, f"{path.name} imports learner module(s) {imported & methods}"
