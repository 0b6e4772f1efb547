"""Data: item-list datasets, the registry of sources, the official few-shot sampler, base/novel."""

from .base import (
    DatasetSource,
    ImageDataset,
    Item,
    get_source,
    list_datasets,
    load_dataset,
    register_dataset,
    sample_few_shot,
    split_base_novel,
)

__all__ = [
    "DatasetSource",
    "ImageDataset",
    "Item",
    "get_source",
    "list_datasets",
    "load_dataset",
    "register_dataset",
    "sample_few_shot",
    "split_base_novel",
]
