"""Hand-written prompt templates, kept as data (docs/methods.md §1, §12). `{}` marks the class name.

IMAGENET_TEMPLATES   the 60 templates of OpenAI CLIP's ImageNet prompt-engineering list, in its
                     order; PromptSRC's textual-diversity ensemble on real datasets
TOYWORLD_TEMPLATES   ToyWorld's caption templates (toyworld/captions.py) with a one-object phrase
                     "a {}": the wording ToyCLIP's text tower was pretrained on
ENSEMBLES            name → templates, for learner options such as PromptSRC's `ensemble`
"""

from __future__ import annotations

IMAGENET_TEMPLATES: tuple[str, ...] = (
    "a photo of a {}.",
    "a bad photo of a {}.",
    "a photo of many {}.",
    "a sculpture of a {}.",
    "a photo of the hard to see {}.",
    "a low resolution photo of the {}.",
    "a rendering of a {}.",
    "graffiti of a {}.",
    "a bad photo of the {}.",
    "a cropped photo of the {}.",
    "a tattoo of a {}.",
    "the embroidered {}.",
    "a photo of a hard to see {}.",
    "a bright photo of a {}.",
    "a photo of a clean {}.",
    "a photo of a dirty {}.",
    "a dark photo of the {}.",
    "a drawing of a {}.",
    "a photo of my {}.",
    "the plastic {}.",
    "a photo of the cool {}.",
    "a close-up photo of a {}.",
    "a black and white photo of the {}.",
    "a painting of the {}.",
    "a painting of a {}.",
    "a pixelated photo of the {}.",
    "a sculpture of the {}.",
    "a bright photo of the {}.",
    "a cropped photo of a {}.",
    "a plastic {}.",
    "a photo of the dirty {}.",
    "a jpeg corrupted photo of a {}.",
    "a blurry photo of the {}.",
    "a photo of the {}.",
    "a good photo of the {}.",
    "a rendering of the {}.",
    "a {} in a video game.",
    "a photo of one {}.",
    "a doodle of a {}.",
    "a close-up photo of the {}.",
    "the origami {}.",
    "the {} in a video game.",
    "a sketch of a {}.",
    "a doodle of the {}.",
    "a origami {}.",
    "a low resolution photo of a {}.",
    "the toy {}.",
    "a rendition of the {}.",
    "a photo of the clean {}.",
    "a photo of a large {}.",
    "a rendition of a {}.",
    "a photo of a nice {}.",
    "a photo of a weird {}.",
    "a blurry photo of a {}.",
    "a cartoon {}.",
    "art of a {}.",
    "a sketch of the {}.",
    "a embroidered {}.",
    "a pixelated photo of a {}.",
    "itap of the {}.",
)

TOYWORLD_TEMPLATES: tuple[str, ...] = (
    "a photo of a {}.",
    "a {}",
    "a picture of a {}.",
    "there is a {}.",
    "an image of a {}.",
    "a {}, photo",
    "a photo showing a {}.",
)

ENSEMBLES: dict[str, tuple[str, ...]] = {"imagenet": IMAGENET_TEMPLATES, "toyworld": TOYWORLD_TEMPLATES}

assert len(IMAGENET_TEMPLATES) == 60 and len(set(IMAGENET_TEMPLATES)) == 60
