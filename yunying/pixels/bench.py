"""Per-frame decode / encode / render milliseconds for a 512x512 16-bit CT frame: python -m yunying.pixels.bench."""
from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from functools import partial

import numpy as np
from pydicom.dataset import Dataset

from yunying.pixels import (
    FrameInfo,
    UnsupportedTransfer,
    decode_frame,
    encode_frame,
    render,
    render_preview,
    thumbnail,
)
from yunying.pixels import syntaxes as ts_


def ct_frame(size: int = 512, seed: int = 0) -> np.ndarray:
    """A synthetic CT slice in stored values: air, a body ellipse, bone ring, noise (int16)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[-1:1:size * 1j, -1:1:size * 1j]
    hu = np.full((size, size), -1000.0)
    body = (x / 0.85) ** 2 + (y / 0.65) ** 2 < 1
    hu[body] = 40
    hu[((x / 0.5) ** 2 + (y / 0.4) ** 2 < 1) & body] = -850   # lungs
    ring = np.abs(np.hypot(x, y + 0.3) - 0.12) < 0.03
    hu[ring] = 900
    hu += rng.normal(0, 12, hu.shape)
    return (hu + 1024).astype(np.int16)  # stored = HU - intercept(-1024)


def ct_header() -> Dataset:
    """Header of the synthetic frame."""
    ds = Dataset()
    ds.Rows = ds.Columns = 512
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    ds.RescaleSlope, ds.RescaleIntercept = 1, -1024
    ds.WindowCenter, ds.WindowWidth = 40, 400
    ds.PixelSpacing = [0.7, 0.7]
    return ds


def timed(fn: Callable[[], object], repeat: int) -> float:
    """Median wall milliseconds of fn over repeat runs (after one warm-up)."""
    fn()
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1000)
    return statistics.median(samples)


def main(repeat: int = 20) -> None:
    """Print the table."""
    frame, header = ct_frame(), ct_header()
    info = FrameInfo.from_dataset(header)
    raw = frame.nbytes
    load = os.getloadavg()[0]
    print(f"512x512 int16 CT frame ({raw} bytes), median of {repeat} runs, one thread, "
          f"load average {load:.1f} on {os.cpu_count()} cores (figures are noisy above 1 per core)")
    print(f"{'transfer syntax':<34}{'encode ms':>10}{'decode ms':>10}{'ratio':>8}")
    for ts in (ts_.EXPLICIT_LE, ts_.RLE, ts_.JPEG_LOSSLESS_SV1, ts_.JPEG_LS_LOSSLESS,
               ts_.JPEG_LS_NEAR, ts_.J2K_LOSSLESS, ts_.J2K, ts_.HTJ2K_LOSSLESS,
               ts_.HTJ2K_LOSSLESS_RPCL, ts_.HTJ2K):
        try:
            data, out = encode_frame(frame, info, ts)
        except UnsupportedTransfer as exc:
            print(f"{ts_.syntax(ts).keyword:<34}  refused: {exc.reason}")
            continue
        n = max(3, repeat // 4) if ts in (ts_.J2K_LOSSLESS, ts_.J2K) else repeat
        enc = timed(partial(encode_frame, frame, info, ts), n)
        dec = timed(partial(decode_frame, data, out, ts), n)
        print(f"{ts_.syntax(ts).keyword:<34}{enc:>10.2f}{dec:>10.2f}{raw / len(data):>8.2f}")
    for media in ("image/jpeg", "image/png"):
        ms = timed(partial(render, [frame], header, media_type=media, window=None, viewport=None,
                           quality=None), repeat)
        print(f"render {media:<27}{ms:>10.2f}")
    ms = timed(lambda: render([frame], header, media_type="image/jpeg", window=(-600, 1500, "LINEAR"),
                              viewport=(256, 256), quality=80), repeat)
    print(f"render jpeg window+viewport 256    {ms:>9.2f}")
    print(f"thumbnail 128                      {timed(lambda: thumbnail(frame, header), repeat):>9.2f}")
    ht, ht_info = encode_frame(frame, info, ts_.HTJ2K_LOSSLESS)
    ms = timed(lambda: render_preview(ht, ht_info, ts_.HTJ2K_LOSSLESS, header, size=128), repeat)
    print(f"preview 128 from HTJ2K bitstream   {ms:>9.2f}")
    cine = [np.roll(frame, k, axis=0) for k in range(30)]
    ms = timed(lambda: render(cine, header, media_type="image/gif", window=None, viewport=(256, 256),
                              quality=None), 3)
    print(f"render gif 30 frames @256 (per frame){ms / 30:>7.2f}")
    mpr(frame, header)


def mpr(frame: np.ndarray, header: Dataset, slices: int = 300) -> None:
    """Coronal MPR and a 10 mm MIP slab from a 512x512xN volume held in memory."""
    from yunying.pixels.reformat import SeriesGeometry, plane_for, render_reformat

    vol = [np.roll(frame, k % 7, axis=1) for k in range(slices)]
    heads = []
    for k in range(slices):
        ds = Dataset()
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.ImagePositionPatient = [0, 0, k * 1.0]
        ds.PixelSpacing, ds.Rows, ds.Columns = [0.7, 0.7], 512, 512
        heads.append(ds)
    geometry, order = SeriesGeometry.from_headers(heads)
    vol = [vol[i] for i in order]
    for name, thick in (("coronal MPR", 0.0), ("coronal MIP 10mm", 10.0)):
        plane = plane_for(geometry, "coronal", size=(512, 512))
        ms = timed(partial(render_reformat, vol.__getitem__, geometry, header, plane,
                           window=None, thickness_mm=thick), 5)
        print(f"{name + f' 512x512x{slices}':<35}{ms:>9.2f}")


if __name__ == "__main__":
    main()
