"""Bytes at rest: one folder per stored instance version, a zarr array for native frames, blobs for the rest."""
from storage.store import Storage, StorageError

__all__ = ["Storage", "StorageError"]
