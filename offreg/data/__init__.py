"""Datasets: catalogue, D4RL HDF5, Minari, offreg's generated data, download+cache, preprocessing,
device-resident sampling."""

from offreg.data.core import Dataset, DatasetInfo, from_arrays, sample

__all__ = ["Dataset", "DatasetInfo", "from_arrays", "sample"]
