"""A user's folder of class folders, or a CSV file, as a dataset."""

import pytest

from mmprompt_lab.data import get_source, load_dataset


def test_flat_folder(tmp_path, mk):
    mk.class_folders(tmp_path, {"zebra": 3, "cat": 2, "Dog": 2})
    mk.jpeg(tmp_path / "cat" / "nested" / "deep.png", fmt="PNG")
    (tmp_path / "cat" / "notes.txt").write_text("not an image")
    (tmp_path / "cat" / ".hidden.jpg").write_bytes(b"")
    ds = load_dataset("folder", root=tmp_path, split="train")
    assert ds.classnames == ["Dog", "cat", "zebra"]  # sorted
    assert [(it.label, it.path.split("/")[-1]) for it in ds.items] == [
        (0, "Dog_0000.jpg"),
        (0, "Dog_0001.jpg"),
        (1, "cat_0000.jpg"),
        (1, "cat_0001.jpg"),
        (1, "deep.png"),
        (2, "zebra_0000.jpg"),
        (2, "zebra_0001.jpg"),
        (2, "zebra_0002.jpg"),
    ]
    assert [it.path for it in load_dataset("folder", root=tmp_path, split="test").items] == [it.path for it in ds.items]
    few = load_dataset("folder", root=tmp_path, shots=1, seed=1, subsample="base")
    assert few.classnames == ["Dog", "cat"] and sorted(few.labels) == [0, 1]
    image, _ = few[0]
    assert image.mode == "RGB"


def test_folder_with_split_folders_and_template(tmp_path, mk):
    mk.class_folders(tmp_path / "train", {"b": 2, "a": 2})
    mk.class_folders(tmp_path / "test", {"a": 1, "c": 1})
    source = get_source("folder", root=tmp_path, template="a picture of {}.")
    assert source.classnames == ["a", "b", "c"] and source.template == "a picture of {}."
    assert set(source.splits) == {"train", "test"}
    assert [it.label for it in source.splits["test"]] == [0, 2]


def test_folder_errors(tmp_path, mk):
    with pytest.raises(ValueError, match="existing folder"):
        get_source("folder", root=tmp_path / "nope")
    (tmp_path / "empty_class").mkdir()
    mk.class_folders(tmp_path, {"full": 1})
    with pytest.raises(ValueError, match="empty_class"):
        get_source("folder", root=tmp_path)
    with pytest.raises(ValueError, match="exactly one"):
        get_source("folder", root=tmp_path, template="no slot")


def test_csv_with_classnames_and_splits(tmp_path, mk):
    for name in ["x1", "x2", "y1", "y2"]:
        mk.jpeg(tmp_path / "img" / f"{name}.jpg")
    (tmp_path / "data.csv").write_text(
        "path,classname,split\n"
        "img/y2.jpg,yak,train\nimg/x1.jpg,xerus,train\n"
        "img/y1.jpg,yak,test\nimg/x2.jpg,xerus,test\n"
    )
    ds = load_dataset("csv", root=tmp_path / "data.csv", split="train")
    assert ds.classnames == ["xerus", "yak"]
    assert [(it.path.split("/")[-1], it.label) for it in ds.items] == [("x1.jpg", 0), ("y2.jpg", 1)]
    assert len(load_dataset("csv", root=tmp_path / "data.csv", split="test")) == 2


def test_csv_with_labels(tmp_path, mk):
    mk.jpeg(tmp_path / "a.jpg")
    mk.jpeg(tmp_path / "b.jpg")
    (tmp_path / "l.csv").write_text(f"path,label\nb.jpg,1\n{tmp_path / 'a.jpg'},0\n")
    ds = load_dataset("csv", root=tmp_path / "l.csv", split="test")
    assert ds.classnames == ["0", "1"] and ds.labels == [0, 1]


@pytest.mark.parametrize(
    "text, match",
    [
        ("file,label\na.jpg,0\n", "header must have 'path'"),
        ("path,label\na.jpg,zero\n", "line 2: label must be an integer"),
        ("path,label\na.jpg,0\nb.jpg,2\n", "without gaps"),
        ("path,label,classname\na.jpg,0,cat\nb.jpg,0,dog\n", "label 0 is both"),
        ("path,classname,split\na.jpg,cat,training\n", "split must be one of"),
    ],
)
def test_csv_errors(tmp_path, text, match):
    (tmp_path / "bad.csv").write_text(text)
    with pytest.raises(ValueError, match=match):
        get_source("csv", root=tmp_path / "bad.csv")


def test_csv_missing_image(tmp_path, mk):
    mk.jpeg(tmp_path / "a.jpg")
    (tmp_path / "m.csv").write_text("path,classname\na.jpg,cat\ngone.jpg,dog\n")
    with pytest.raises(FileNotFoundError, match="gone.jpg"):
        load_dataset("csv", root=tmp_path / "m.csv", split="train")
