"""Manifests: every real dataset has one, they validate, and a bad one fails with file + field."""

import json

import pytest

from mmprompt_lab.data import list_datasets
from mmprompt_lab.data.manifest import MANIFEST_DIR, SCHEMA, list_manifests, load_manifest, read_manifest

EXPECTED = {  # name: (folder, classes, template) from docs/protocols.md §2 / docs/methods.md §1
    "imagenet": ("imagenet", 1000, "a photo of a {}."),
    "caltech101": ("caltech-101", 100, "a photo of a {}."),
    "oxford_pets": ("oxford_pets", 37, "a photo of a {}, a type of pet."),
    "stanford_cars": ("stanford_cars", 196, "a photo of a {}."),
    "oxford_flowers": ("oxford_flowers", 102, "a photo of a {}, a type of flower."),
    "food101": ("food-101", 101, "a photo of {}, a type of food."),
    "fgvc_aircraft": ("fgvc_aircraft", 100, "a photo of a {}, a type of aircraft."),
    "sun397": ("sun397", 397, "a photo of a {}."),
    "dtd": ("dtd", 47, "{} texture."),
    "eurosat": ("eurosat", 10, "a centered satellite photo of {}."),
    "ucf101": ("ucf101", 101, "a photo of a person doing {}."),
    "imagenetv2": ("imagenetv2", 1000, "a photo of a {}."),
    "imagenet_sketch": ("imagenet-sketch", 1000, "a photo of a {}."),
    "imagenet_a": ("imagenet-adversarial", 200, "a photo of a {}."),
    "imagenet_r": ("imagenet-rendition", 200, "a photo of a {}."),
}
BASE_NOVEL = {
    "imagenet": (500, 500),
    "caltech101": (50, 50),
    "oxford_pets": (19, 18),
    "stanford_cars": (98, 98),
    "oxford_flowers": (51, 51),
    "food101": (51, 50),
    "fgvc_aircraft": (50, 50),
    "sun397": (199, 198),
    "dtd": (24, 23),
    "eurosat": (5, 5),
    "ucf101": (51, 50),
}


def test_every_dataset_has_a_valid_registered_manifest():
    assert set(list_manifests()) == set(EXPECTED)
    assert set(EXPECTED) <= set(list_datasets())
    for name, (folder, classes, template) in EXPECTED.items():
        m = load_manifest(name)
        assert (m.folder, m.num_classes, m.template) == (folder, classes, template), name
        assert m.sources and all(s["url"].startswith("https://") for s in m.sources)
        if name in BASE_NOVEL:
            assert m.base_novel == BASE_NOVEL[name]
            assert m.base_novel[0] == -(-m.num_classes // 2)  # ceil(n/2), docs/protocols.md §1


def test_split_sizes_match_the_protocol():
    assert load_manifest("dtd").split_sizes == {"train": 2820, "val": 1128, "test": 1692}
    assert load_manifest("caltech101").split_sizes == {"train": 4128, "val": 1649, "test": 2465}
    assert load_manifest("fgvc_aircraft").split_file == "none"
    assert load_manifest("eurosat").classname_renames["SeaLake"] == "Sea or Lake"


def _write(tmp_path, name, data):
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize(
    "change, field",
    [
        (lambda d: d.pop("template"), "template"),
        (lambda d: d.update(num_classes="47"), "num_classes"),
        (lambda d: d.update(template="{} and {}"), "template"),
        (lambda d: d.update(reader="magic"), "reader"),
        (lambda d: d.update(colour="blue"), "colour"),
        (lambda d: d.update(layout=[{"path": "images"}]), "layout"),
        (lambda d: d.update(base_novel=[20, 20]), "base_novel"),
        (lambda d: d.update(name="other"), "name"),
    ],
)
def test_bad_manifest_names_file_and_field(tmp_path, change, field):
    data = json.loads((MANIFEST_DIR / "dtd.json").read_text())
    change(data)
    path = _write(tmp_path, "dtd", data)
    with pytest.raises(ValueError) as err:
        read_manifest(path)
    assert str(path) in str(err.value) and repr(field) in str(err.value)


def test_manifest_that_is_not_json(tmp_path):
    path = tmp_path / "dtd.json"
    path.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        read_manifest(path)
    with pytest.raises(ValueError, match="no manifest for dataset 'dtdd'"):
        load_manifest("dtdd")


def test_schema_file_lists_the_code_schema():
    schema = json.loads((MANIFEST_DIR / "schema.json").read_text())
    assert set(schema["properties"]) == set(SCHEMA)
    assert set(schema["required"]) == {k for k, v in SCHEMA.items() if v[1]}
