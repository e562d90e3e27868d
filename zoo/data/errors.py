"""Errors specific to reading dataset files (the shared ones live in :mod:`zoo.errors`)."""
from __future__ import annotations

import pickle

from zoo.errors import ZooError


class DataFormatError(ZooError, ValueError):
    """A dataset file is not in the format it should be (bad magic number, truncated, wrong shape...)."""


class UnsafePickleError(DataFormatError, pickle.UnpicklingError):
    """A pickle asked for something other than the numpy array reconstruction CIFAR-10 batches need."""


class UnsafeArchiveError(DataFormatError):
    """An archive holds a member that would land outside its target folder, or is not a plain file/folder."""
