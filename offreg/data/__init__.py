"""Datasets: catalogue, D4RL HDF5, Minari, offreg's generated data, download+cache, preprocessing,
device-resident sampling.

The entry point is :func:`load_dataset`; :func:`catalogue_rows`, :func:`dataset_summary`,
:func:`download_dataset` and :func:`format_table` back ``offreg datasets list|info|download``.
"""

from offreg.data.catalogue import CATALOGUE, ENV_DIMS, CatalogueEntry, d4rl_cache_dir, minari_root, offreg_data_dir
from offreg.data.core import Dataset, DatasetInfo, from_arrays, sample
from offreg.data.loader import (
    catalogue_rows,
    dataset_summary,
    download_dataset,
    format_summary,
    format_table,
    load_dataset,
    preprocess,
)

__all__ = [
    "CATALOGUE",
    "ENV_DIMS",
    "CatalogueEntry",
    "Dataset",
    "DatasetInfo",
    "catalogue_rows",
    "d4rl_cache_dir",
    "dataset_summary",
    "download_dataset",
    "format_summary",
    "format_table",
    "from_arrays",
    "load_dataset",
    "minari_root",
    "offreg_data_dir",
    "preprocess",
    "sample",
]
