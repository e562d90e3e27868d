"""Exceptions raised by the zoo. Every message names what was wrong and what is accepted."""
from __future__ import annotations

import pickle
from pathlib import Path


class ZooError(Exception):
    """Base class of every error the zoo raises on purpose."""


class ManifestError(ZooError, ValueError):
    """The weights manifest (or an entry of it) does not follow the schema."""


class UnknownModelError(ZooError, KeyError):
    """A model id or entrypoint that the registry does not know."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


class RunFolderError(ZooError, ValueError):
    """A folder given as a model that is not a finished training run (its ``entry.json`` and checkpoint)."""


class WeightsPendingError(ZooError, RuntimeError):
    """The checkpoint is listed in the manifest but has not been trained and published yet."""


class HashMismatchError(ZooError, OSError):
    """A file's SHA-256 differs from the one recorded for it."""

    def __init__(self, path: Path | str, expected: str, actual: str) -> None:
        self.path, self.expected, self.actual = Path(path), expected, actual
        super().__init__(f"SHA-256 mismatch for {self.path}: expected {expected}, got {actual}")

    def __str__(self) -> str:
        return f"SHA-256 mismatch for {self.path}: expected {self.expected}, got {self.actual}"


class DownloadError(ZooError, OSError):
    """A download failed (HTTP error, broken connection, truncated body)."""


class OfflineError(ZooError, OSError):
    """A file is needed, it is not cached, and the zoo may not (or cannot) reach the network."""


class DatasetNotFoundError(ZooError, FileNotFoundError):
    """A dataset's files are not under the data root."""


class ChecksumError(ZooError, ValueError):
    """A dataset file's content differs from the official release."""


class PushError(ZooError, OSError):
    """Creating a Hub repo or uploading a folder to it failed."""


class DataFormatError(ZooError, ValueError):
    """A dataset file is not in the format it should be (bad magic number, truncated, wrong shape...)."""


class UnsafePickleError(DataFormatError, pickle.UnpicklingError):
    """A pickle asked for something other than the numpy array reconstruction CIFAR-10 batches need."""


class UnsafeArchiveError(DataFormatError):
    """An archive holds a member that would land outside its target folder, or is not a plain file/folder."""


class MissingExtraError(ZooError, ImportError):
    """An optional dependency (an "extra") is not installed."""
