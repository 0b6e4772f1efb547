"""Every reader on small datasets in the real layouts."""

import json
import os
from pathlib import Path

import numpy as np
import pytest

from mmprompt_lab.data import base, get_source, load_dataset, readers
from mmprompt_lab.data.readers import generate_split

ZHOU = {  # name: (folder, image folder, split file)
    "caltech101": ("caltech-101", "101_ObjectCategories", "split_zhou_Caltech101.json"),
    "oxford_pets": ("oxford_pets", "images", "split_zhou_OxfordPets.json"),
    "oxford_flowers": ("oxford_flowers", "jpg", "split_zhou_OxfordFlowers.json"),
    "food101": ("food-101", "images", "split_zhou_Food101.json"),
    "sun397": ("sun397", "SUN397", "split_zhou_SUN397.json"),
    "dtd": ("dtd", "images", "split_zhou_DescribableTextures.json"),
    "eurosat": ("eurosat", "2750", "split_zhou_EuroSAT.json"),
    "ucf101": ("ucf101", "UCF-101-midframes", "split_zhou_UCF101.json"),
}
SIZES = {"train": [3, 2, 4], "val": [1, 2, 1], "test": [2, 1, 2]}


@pytest.mark.parametrize("name", sorted(ZHOU))
def test_zhou_split_reader(tmp_path, mk, name):
    folder, image_rel, split_name = ZHOU[name]
    classes = ["c_zero", "c one", "c_two"]
    data = mk.zhou_split(tmp_path / folder, image_rel, split_name, classes, SIZES)
    source = get_source(name, root=tmp_path)
    assert source.classnames == classes
    assert source.meta["generated_split"] is False
    for split in ("train", "val", "test"):
        items = source.splits[split]
        assert [
            (Path(it.path).relative_to(tmp_path / folder / image_rel).as_posix(), it.label, it.classname)
            for it in items
        ] == [tuple(e) for e in data[split]]  # file order kept
    ds = load_dataset(name, root=tmp_path, split="test")
    assert len(ds) == sum(SIZES["test"]) and ds.template == source.template
    image, label = ds[0]
    assert image.mode == "RGB" and label == ds.items[0].label


def test_stanford_cars_paths_are_relative_to_the_dataset_folder(tmp_path, mk):
    ddir = tmp_path / "stanford_cars"
    names = ["2012 Tesla Model S Sedan", "2007 Volvo XC90 SUV", "1993 Geo Metro Convertible"]
    data = mk.zhou_split(ddir, "", "split_zhou_StanfordCars.json", names, SIZES, prefix="cars_train")
    assert data["train"][0][0].startswith("cars_train/")
    source = get_source("stanford_cars", root=tmp_path)
    assert source.splits["train"][0].path == str(ddir / data["train"][0][0])
    assert source.classnames == names


def test_root_may_be_the_dataset_folder_itself(tmp_path, mk):
    mk.zhou_split(tmp_path / "dtd", "images", ZHOU["dtd"][2], ["a", "b", "c"], SIZES)
    assert len(load_dataset("dtd", root=tmp_path / "dtd", split="val")) == 4


def test_bad_split_files_say_where(tmp_path, mk):
    ddir = tmp_path / "dtd"
    data = mk.zhou_split(ddir, "images", ZHOU["dtd"][2], ["a", "b", "c"], SIZES)
    path = ddir / ZHOU["dtd"][2]
    data["val"][1] = ["x.jpg", "1"]
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"val\[1\] should be \[relative_path, label, classname\]"):
        get_source("dtd", root=tmp_path)
    path.write_text(json.dumps({"train": [], "test": []}))
    with pytest.raises(ValueError, match="keys"):
        get_source("dtd", root=tmp_path / "dtd")
    with pytest.raises(ValueError, match="needs root="):
        get_source("dtd")
    with pytest.raises(ValueError, match="caltech-101 not found"):
        get_source("caltech101", root=tmp_path)
    path.unlink()
    os.mkfifo(path)  # never opened (that would block), never silently replaced by a generated split
    with pytest.raises(ValueError, match=r"split_zhou_DescribableTextures.json is not a regular file \(FIFO\)"):
        get_source("dtd", root=tmp_path / "dtd")


def test_generated_folder_split_is_50_20_30_with_conventions(tmp_path, mk):
    image_dir = tmp_path / "caltech-101" / "101_ObjectCategories"
    mk.class_folders(
        image_dir, {"airplanes": 10, "BACKGROUND_Google": 4, "Faces": 7, "Faces_easy": 4, "Leopards": 5, "accordion": 6}
    )
    source = get_source("caltech101", root=tmp_path)
    assert source.meta["generated_split"] is True
    # sorted folder names (upper case first, as Python sorts), renamed, two folders dropped
    assert source.classnames == ["face", "leopard", "accordion", "airplane"]
    for label, n in enumerate([7, 5, 6, 10]):  # round(n·0.5), round(n·0.2), rest
        counts = [sum(it.label == label for it in source.splits[s]) for s in ("train", "val", "test")]
        assert counts == [round(n * 0.5), round(n * 0.2), n - round(n * 0.5) - round(n * 0.2)]
    # written as JSON in the split_zhou format into the cache, and the same on regeneration
    cached = json.loads(Path(source.meta["split_file"]).read_text())
    assert cached["train"][0][1:] == [0, "face"] and cached["train"][0][0].startswith("Faces/")
    again = json.loads(generate_split("caltech101", tmp_path, tmp_path / "again.json").read_text())
    assert again == cached


def test_generated_eurosat_names(tmp_path, mk):
    mk.class_folders(tmp_path / "eurosat" / "2750", {"AnnualCrop": 4, "SeaLake": 4, "River": 5})
    assert get_source("eurosat", root=tmp_path).classnames == ["Annual Crop Land", "River", "Sea or Lake"]


def test_generated_pets_trainval_80_20(tmp_path, mk):
    ddir = tmp_path / "oxford_pets"
    lines = {"trainval.txt": [], "test.txt": []}
    for name, label, n in [("Abyssinian", 1, 10), ("american_bulldog", 2, 6)]:
        for i in range(n + 2):
            mk.jpeg(ddir / "images" / f"{name}_{i}.jpg", seed=i)
            lines["test.txt" if i >= n else "trainval.txt"].append(f"{name}_{i} {label} 1 1")
    (ddir / "annotations").mkdir()
    for file, rows in lines.items():
        (ddir / "annotations" / file).write_text("\n".join(rows) + "\n")
    source = get_source("oxford_pets", root=tmp_path)
    assert source.classnames == ["abyssinian", "american_bulldog"]
    assert [len(source.splits[s]) for s in ("train", "val", "test")] == [8 + 5, 2 + 1, 4]
    assert {it.label for it in source.splits["val"]} == {0, 1}


def test_generated_sun397_and_ucf101_names(tmp_path, mk):
    ddir = tmp_path / "sun397"
    classes = ["/a/abbey", "/a/apartment_building/outdoor"]
    (ddir).mkdir()
    (ddir / "ClassName.txt").write_text("\n".join(classes) + "\n")
    rows = {"Training_01.txt": [], "Testing_01.txt": []}
    for c in classes:
        for i in range(7):
            mk.jpeg(ddir / "SUN397" / c.lstrip("/") / f"sun_{i}.jpg", seed=i)
            rows["Testing_01.txt" if i >= 5 else "Training_01.txt"].append(f"{c}/sun_{i}.jpg")
    for file, lines in rows.items():
        (ddir / file).write_text("\n".join(lines) + "\n")
    sun = get_source("sun397", root=tmp_path)
    assert sun.classnames == ["abbey", "outdoor apartment_building"]
    assert [len(sun.splits[s]) for s in ("train", "val", "test")] == [8, 2, 4]

    udir = tmp_path / "ucf101"
    (udir / "ucfTrainTestlist").mkdir(parents=True)
    (udir / "ucfTrainTestlist" / "classInd.txt").write_text("1 ApplyEyeMakeup\n2 YoYo\n")
    train, test = [], []
    for action, label in [("ApplyEyeMakeup", 1), ("YoYo", 2)]:
        renamed = {"ApplyEyeMakeup": "Apply_Eye_Makeup", "YoYo": "Yo_Yo"}[action]
        for i in range(6):
            mk.jpeg(udir / "UCF-101-midframes" / renamed / f"v_{action}_g{i:02d}_c01.jpg", seed=i)
            (test if i >= 5 else train).append(f"{action}/v_{action}_g{i:02d}_c01.avi" + (f" {label}" if i < 5 else ""))
    (udir / "ucfTrainTestlist" / "trainlist01.txt").write_text("\n".join(train) + "\n")
    (udir / "ucfTrainTestlist" / "testlist01.txt").write_text("\n".join(test) + "\n")
    ucf = load_dataset("ucf101", root=tmp_path, split="train")
    assert ucf.classnames == ["Apply_Eye_Makeup", "Yo_Yo"] and len(ucf) == 8


def test_generated_flowers_from_mat_labels(tmp_path, mk):
    scipy_io = pytest.importorskip("scipy.io")
    ddir = tmp_path / "oxford_flowers"
    labels = [2, 1, 1, 2, 1, 2, 1, 2, 1, 2, 2, 1]
    for i in range(len(labels)):
        mk.jpeg(ddir / "jpg" / f"image_{i + 1:05d}.jpg", seed=i)
    scipy_io.savemat(ddir / "imagelabels.mat", {"labels": np.array([labels], dtype=np.uint8)})
    (ddir / "cat_to_name.json").write_text(json.dumps({"1": "pink primrose", "2": "hard-leaved pocket orchid"}))
    source = get_source("oxford_flowers", root=tmp_path)
    assert source.classnames == ["pink primrose", "hard-leaved pocket orchid"]
    assert [len(source.splits[s]) for s in ("train", "val", "test")] == [6, 2, 4]
    first = [it for it in source.splits["train"] + source.splits["val"] + source.splits["test"] if it.label == 1]
    assert {Path(it.path).name for it in first} == {f"image_{i + 1:05d}.jpg" for i, v in enumerate(labels) if v == 2}


def test_fgvc_aircraft_lists(tmp_path, mk):
    ddir = tmp_path / "fgvc_aircraft"
    variants = ["707-320", "A300B4", "F/A-18"]
    (ddir / "images").mkdir(parents=True)
    (ddir / "variants.txt").write_text("\n".join(variants) + "\n")
    n = 0
    for split in ("train", "val", "test"):
        rows = []
        for k in range(4):
            image_id = f"{1000000 + n:07d}"
            mk.jpeg(ddir / "images" / f"{image_id}.jpg", seed=n)
            rows.append(f"{image_id} {variants[(k + 1) % 3]}")
            n += 1
        (ddir / f"images_variant_{split}.txt").write_text("\n".join(rows) + "\n")
    source = get_source("fgvc_aircraft", root=tmp_path)
    assert source.classnames == variants
    assert [it.label for it in source.splits["val"]] == [1, 2, 0, 1]
    assert source.splits["val"][1].classname == "F/A-18"
    assert len(load_dataset("fgvc_aircraft", root=tmp_path, split="val", shots=1, seed=1)) == 3
    (ddir / "images_variant_test.txt").write_text("1000099 Boeing 999\n")
    with pytest.raises(ValueError, match="'Boeing 999' is not in variants.txt"):
        get_source("fgvc_aircraft", root=tmp_path / "fgvc_aircraft")


def test_imagenet_folders_and_listing_cache(tmp_path, mk, monkeypatch):
    ddir = tmp_path / "imagenet"
    wnids = ["n01530575", "n01440764", "n01443537"]  # classnames.txt order ≠ sorted order
    names = mk.imagenet_classnames(ddir / "classnames.txt", wnids)
    for w in wnids:
        mk.class_folders(ddir / "images" / "train", {w: 3}, ext=".JPEG")
        mk.class_folders(ddir / "images" / "val", {w: 2}, ext=".JPEG")
    source = get_source("imagenet", root=tmp_path)
    assert source.classnames == [names[w] for w in sorted(wnids)]  # labels in sorted wnid order
    assert set(source.splits) == {"train", "test"}
    assert [it.label for it in source.splits["train"]] == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert source.splits["test"][0].path.startswith(str(ddir / "images" / "val" / "n01440764"))
    base._CACHE.clear()
    monkeypatch.setattr(readers, "_wnid_folders", None)  # a second read must come from the JSON listing
    cached = get_source("imagenet", root=tmp_path)
    assert cached is not source and cached.splits == source.splits and Path(cached.meta["listing"]).is_file()
    assert cached.classnames == source.classnames
    assert len(load_dataset("imagenet", root=tmp_path, split="train", shots=2, subsample="base")) == 4
    with pytest.raises(ValueError, match="has 1 class"):  # the novel half of 3 classes is 1 class
        load_dataset("imagenet", root=tmp_path, split="train", shots=2, subsample="novel")


def test_imagenet_variants(tmp_path, mk):
    all_wnids = [f"n0{i:07d}" for i in range(6)]
    names = mk.imagenet_classnames(tmp_path / "imagenet" / "classnames.txt", all_wnids)
    # ImageNetV2: folders 0..n-1 follow classnames.txt order
    for label in range(6):
        mk.class_folders(tmp_path / "imagenetv2" / "imagenetv2-matched-frequency-format-val", {str(label): 2})
    v2 = get_source("imagenetv2", root=tmp_path)
    assert v2.classnames == list(names.values()) and set(v2.splits) == {"test"}
    assert [it.label for it in v2.splits["test"]] == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    # Sketch: all wnids; A/R: a subset (labels in sorted subset order, names restricted)
    mk.class_folders(tmp_path / "imagenet-sketch" / "images", {w: 1 for w in all_wnids})
    assert get_source("imagenet_sketch", root=tmp_path).splits["test"][0].domain == "sketch"
    subset = [all_wnids[4], all_wnids[1], all_wnids[3]]
    mk.class_folders(tmp_path / "imagenet-adversarial" / "imagenet-a", {w: 2 for w in subset})
    (tmp_path / "imagenet-adversarial" / "imagenet-a" / "README.txt").write_text("not a class")
    a = load_dataset("imagenet_a", root=tmp_path, split="test")
    assert a.classnames == [names[w] for w in sorted(subset)]
    assert [it.label for it in a.items] == [0, 0, 1, 1, 2, 2]
    assert a.items[2].path.startswith(str(tmp_path / "imagenet-adversarial" / "imagenet-a" / all_wnids[3]))
    mk.class_folders(tmp_path / "imagenet-rendition" / "imagenet-r", {"n09999999": 1})
    with pytest.raises(ValueError, match="n09999999"):
        get_source("imagenet_r", root=tmp_path)
    with pytest.raises(ValueError, match="no split 'train'"):
        load_dataset("imagenet_a", root=tmp_path, split="train")


def test_unknown_source_option(tmp_path, mk):
    mk.zhou_split(tmp_path / "dtd", "images", ZHOU["dtd"][2], ["a", "b", "c"], SIZES)
    with pytest.raises(ValueError, match="unknown option"):
        get_source("dtd", root=tmp_path, colour="red")


def test_generated_cars_year_first_from_mat_files(tmp_path, mk):
    scipy_io = pytest.importorskip("scipy.io")
    ddir = tmp_path / "stanford_cars"

    def annotations(folder, rows):
        ann = np.zeros((1, len(rows)), dtype=[("fname", "O"), ("class", "O")])
        for i, (fname, label) in enumerate(rows):
            mk.jpeg(ddir / folder / fname, seed=i)
            ann[0, i]["fname"], ann[0, i]["class"] = fname, np.array([[label]], dtype=np.uint8)
        return {"annotations": ann}

    (ddir / "devkit").mkdir(parents=True)
    meta = np.empty((1, 2), dtype=object)
    meta[0, 0], meta[0, 1] = "Tesla Model S Sedan 2012", "Volvo XC90 SUV 2007"
    scipy_io.savemat(ddir / "devkit" / "cars_meta.mat", {"class_names": meta})
    train = [(f"{i:05d}.jpg", 1 + i % 2) for i in range(1, 11)]
    scipy_io.savemat(ddir / "devkit" / "cars_train_annos.mat", annotations("cars_train", train))
    scipy_io.savemat(ddir / "cars_test_annos_withlabels.mat", annotations("cars_test", [("00001.jpg", 2)]))
    source = get_source("stanford_cars", root=tmp_path)
    assert source.classnames == ["2012 Tesla Model S Sedan", "2007 Volvo XC90 SUV"]
    assert [len(source.splits[s]) for s in ("train", "val", "test")] == [8, 2, 1]
    assert source.splits["test"][0].path == str(ddir / "cars_test" / "00001.jpg")
    cached = json.loads(Path(source.meta["split_file"]).read_text())
    assert cached["test"] == [["cars_test/00001.jpg", 1, "2007 Volvo XC90 SUV"]]  # relative to the dataset folder
