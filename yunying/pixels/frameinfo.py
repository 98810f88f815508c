"""FrameInfo: the Image Pixel module attributes needed to decode or encode one frame (PS3.3 C.7.6.3)."""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from yunying.errors import UnsupportedTransferSyntax


class UnsupportedTransfer(UnsupportedTransferSyntax):
    """A transfer syntax we cannot decode or encode for this image, with the reason."""


@dataclass(frozen=True)
class FrameInfo:
    """Everything needed to decode or encode one frame of an instance."""

    rows: int
    columns: int
    samples_per_pixel: int
    bits_allocated: int
    bits_stored: int
    high_bit: int
    pixel_representation: int
    photometric: str
    planar_configuration: int
    number_of_frames: int

    @classmethod
    def from_dataset(cls, ds: Any) -> FrameInfo:
        """Read the Image Pixel module of a header Dataset."""
        bits_allocated = int(ds.get("BitsAllocated", 16))
        bits_stored = int(ds.get("BitsStored", bits_allocated) or bits_allocated)
        samples = int(ds.get("SamplesPerPixel", 1) or 1)
        try:
            frames = int(ds.get("NumberOfFrames", 1) or 1)
        except (TypeError, ValueError):
            frames = 1
        return cls(
            rows=int(ds.Rows),
            columns=int(ds.Columns),
            samples_per_pixel=samples,
            bits_allocated=bits_allocated,
            bits_stored=bits_stored,
            high_bit=int(ds.get("HighBit", bits_stored - 1) or bits_stored - 1),
            pixel_representation=int(ds.get("PixelRepresentation", 0) or 0),
            photometric=str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip(),
            planar_configuration=int(ds.get("PlanarConfiguration", 0) or 0) if samples > 1 else 0,
            number_of_frames=max(frames, 1),
        )

    def dtype(self) -> np.dtype:
        """Little-endian numpy dtype of one native sample (bool-packed 1-bit data unpacks to uint8)."""
        if self.bits_allocated <= 8:
            size = 1
        elif self.bits_allocated <= 16:
            size = 2
        elif self.bits_allocated <= 32:
            size = 4
        else:
            size = 8
        kind = "i" if self.pixel_representation else "u"
        return np.dtype(f"<{kind}{size}")

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of one frame as an array: (rows, cols) or (rows, cols, samples)."""
        if self.samples_per_pixel == 1:
            return (self.rows, self.columns)
        return (self.rows, self.columns, self.samples_per_pixel)

    @property
    def frame_bytes(self) -> int:
        """Native size of one frame in bytes (bit-packed for BitsAllocated 1)."""
        n = self.rows * self.columns * self.samples_per_pixel
        if self.bits_allocated == 1:
            return (n + 7) // 8
        return n * self.dtype().itemsize

    def with_(self, **changes: Any) -> FrameInfo:
        """A copy with some attributes changed."""
        return replace(self, **changes)

    def pixel_options(self) -> dict[str, Any]:
        """Keyword options in the form pydicom 3's pixel decoders and encoders take."""
        return {
            "rows": self.rows,
            "columns": self.columns,
            "samples_per_pixel": self.samples_per_pixel,
            "bits_allocated": self.bits_allocated,
            "bits_stored": self.bits_stored,
            "pixel_representation": self.pixel_representation,
            "photometric_interpretation": self.photometric,
            "planar_configuration": self.planar_configuration,
            "number_of_frames": 1,
            "pixel_keyword": "PixelData",
        }

    def apply_to(self, ds: Any) -> None:
        """Write these attributes back into a Dataset's Image Pixel module."""
        ds.Rows, ds.Columns = self.rows, self.columns
        ds.SamplesPerPixel = self.samples_per_pixel
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = (
            self.bits_allocated, self.bits_stored, self.high_bit)
        ds.PixelRepresentation = self.pixel_representation
        ds.PhotometricInterpretation = self.photometric
        if self.samples_per_pixel > 1:
            ds.PlanarConfiguration = self.planar_configuration
        elif "PlanarConfiguration" in ds:
            del ds.PlanarConfiguration
