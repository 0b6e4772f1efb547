"""Captions: varied templates with synonyms and partial attributes.

Attribute words are dropped at random (colour p=0.5, pattern p=0.5, size p=0.7, background
p=0.6) so the text tower learns each word on its own, and a few captions name only an attribute
("a striped shape", "a photo of the snow") so that the suites' zero-shot templates are in
distribution. Class names of every suite occur here as the canonical words.
"""

from __future__ import annotations

import numpy as np

from .factors import BACKGROUND_PHRASES, COLOUR_WORDS, COUNT_WORDS, SHAPE_SYNONYMS, plural
from .render import Scene

_TEMPLATES = (
    "a photo of {}.",
    "{}",
    "a picture of {}.",
    "there is {}.",
    "an image of {}.",
    "{}, photo",
    "a photo showing {}.",
)


def _pick(rng: np.random.Generator, options: list[str]) -> str:
    return options[rng.integers(len(options))]


def caption(scene: Scene, rng: np.random.Generator, name_p: float = 1.0) -> str:
    """A natural-language caption of `scene`, e.g. "two small blue stars on the grass".

    `name_p` < 1 names the object only with that probability, else a generic noun ("two small blue
    things on the grass"); it is drawn only when asked, so the default stream is unchanged."""
    obj, count = scene.objects[0], len(scene.objects)
    r = rng.uniform()
    if r < 0.04:  # background only
        return f"a photo of the {scene.background}."
    if r < 0.10:  # attribute only: the object word is replaced by a generic noun
        attr = obj.pattern if rng.uniform() < 0.5 else _pick(rng, COLOUR_WORDS[obj.colour])
        return f"a photo of a {attr} {_pick(rng, ['shape', 'object', 'thing'])}."
    syn = SHAPE_SYNONYMS.get(obj.shape, [obj.shape])
    noun = syn[0] if rng.uniform() < 0.75 else _pick(rng, syn)
    if name_p < 1 and rng.uniform() >= name_p:
        noun = _pick(rng, ["shape", "object", "thing"])
    words = [_pick(rng, COUNT_WORDS[count])]
    if rng.uniform() < 0.3:
        words.append("small" if obj.radius < 0.3 else ("big" if obj.radius > 0.5 else "medium"))
    colour_first = rng.uniform() < 0.5
    colour = _pick(rng, COLOUR_WORDS[obj.colour]) if rng.uniform() < 0.5 else None
    pattern = obj.pattern if rng.uniform() < 0.5 and (obj.pattern != "plain" or rng.uniform() < 0.3) else None
    attrs = [w for w in ((colour, pattern) if colour_first else (pattern, colour)) if w]
    words += attrs
    words.append(noun if count == 1 else plural(noun))
    phrase = " ".join(words)
    if phrase.startswith("a ") and phrase[2] in "aeiou":
        phrase = "an " + phrase[2:]
    if rng.uniform() < 0.4:
        phrase += " " + _pick(rng, BACKGROUND_PHRASES[scene.background])
    return _pick(rng, list(_TEMPLATES)).format(phrase)
