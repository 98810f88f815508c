"""The benchmark harness on tiny data: every figure is produced, or n/a with a reason.

No timing assertions: these tests check that the harness measures, not what it measures.
"""

from __future__ import annotations

import subprocess
import sys
import zlib
from pathlib import Path

import pydicom
import pytest

from benchmarks.data import build_corpus, build_ct
from benchmarks.dimse import StoreScp, dcmtk_available
from benchmarks.net import REPO_ROOT, free_port
from benchmarks.orthanc import orthanc_available
from benchmarks.report import METRICS, Results
from benchmarks.run import Data, Profile, run_import, run_server
from tests.conftest import missing_tool

TINY = Profile(studies=24, ct_slices=8, qido_queries=30, metadata_runs=2,
               frame_latency_requests=10, frame_seconds=0.5, find_queries=8,
               frame_requests=40, cstore_instances=8, corpus_seconds=60,
               rendered_requests=4, thumb_repeats=3, cine_passes=1, ttfi_runs=2, mpr_requests=3,
               shaped_runs=1, small_studies=5)


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Data:
    root = tmp_path_factory.mktemp("bench-data")
    return Data(ct=build_ct(root, TINY.ct_slices, "A"), ct_store1=build_ct(root, TINY.ct_slices, "B"),
                ct_store4=build_ct(root, TINY.ct_slices, "C"), corpus=build_corpus(root, TINY.studies),
                small=build_corpus(root, TINY.small_studies))


def test_ct_is_realistic_and_compressible(tiny_data: Data) -> None:
    ds = pydicom.dcmread(tiny_data.ct.files[3])
    assert (ds.Rows, ds.Columns, ds.BitsAllocated, ds.PixelRepresentation) == (512, 512, 16, 1)
    assert float(ds.RescaleIntercept) == -1024 and ds.PixelSpacing and ds.WindowCenter
    z = [float(pydicom.dcmread(f, stop_before_pixels=True).ImagePositionPatient[2])
         for f in tiny_data.ct.files[:3]]
    assert z[0] - z[1] == pytest.approx(z[1] - z[2]) != 0
    pixels = ds.pixel_array
    assert pixels.std() > 100 and len(set(pixels[200, 100:400].tolist())) > 20  # not flat, noisy
    ratio = len(ds.PixelData) / len(zlib.compress(ds.PixelData, 1))
    assert 1.5 < ratio < 10  # compresses like CT: neither random bytes nor zeros
    assert ds.SOPInstanceUID == tiny_data.ct.sop_uids[3]


def test_uids_are_stable_and_distinct(tiny_data: Data, tmp_path: Path) -> None:
    again = build_ct(tmp_path, TINY.ct_slices, "A")
    assert again.study_uid == tiny_data.ct.study_uid and again.sop_uids == tiny_data.ct.sop_uids
    assert tiny_data.ct_store1.study_uid != tiny_data.ct.study_uid
    assert len({*tiny_data.ct.sop_uids, *tiny_data.ct_store1.sop_uids}) == 2 * TINY.ct_slices


def test_corpus_has_chinese_and_latin_names(tiny_data: Data) -> None:
    corpus = tiny_data.corpus
    assert len(corpus.studies) == TINY.studies and len(corpus.files) >= TINY.studies
    names = [str(pydicom.dcmread(f).PatientName) for f in corpus.files]
    assert any("=" in n and any("\u4e00" <= c <= "\u9fff" for c in n) for n in names)
    assert any("=" not in n for n in names)
    ds = pydicom.dcmread(corpus.files[0])
    assert ds.SpecificCharacterSet == "ISO_IR 192" and (ds.Rows, ds.Columns) == (8, 8)
    assert build_corpus(corpus.directory.parent, TINY.studies).studies == corpus.studies


def test_table_shows_ratio_target_and_na() -> None:
    r = Results(["yunying", "orthanc"])
    r.set("yunying", "stow_ips", 600)
    r.set("orthanc", "stow_ips", 300)
    r.set("yunying", "qido_p50", 4)
    r.set("orthanc", "qido_p50", 20)
    r.fail("orthanc", ["import_ips"], "no equivalent command")
    table = r.table()
    assert "2.00x" in table and "0.20x" in table and "met" in table
    assert "n/a (no equivalent command)" in table
    assert len(r.rows()) == len(METRICS)
    r.set("yunying", "shaped_frame_ms", 900)  # both targets: 1,000 ms and half of Orthanc's
    r.set("orthanc", "shaped_frame_ms", 1200)
    [row] = [row for row in r.rows() if row["key"] == "shaped_frame_ms"]
    assert row["verdict"] == "MISSED" and row["target"] == "<= 0.5x, 1000"
    r.set("orthanc", "shaped_frame_ms", 2000)
    [row] = [row for row in r.rows() if row["key"] == "shaped_frame_ms"]
    assert row["verdict"] == "met"


def _check_all_figures(results: Results, name: str, expect_missing: set[str]) -> None:
    missing = {m.key for m in METRICS} - set(results.values[name]) - expect_missing
    assert not missing, (results.details[name].get("start_error"),
                         {k: results.na[name].get(k) for k in missing})
    assert results.details[name]["qido"]["errors"] == 0


@pytest.fixture
def tools_installed() -> None:
    if not (orthanc_available() and dcmtk_available()):
        missing_tool("Orthanc or DCMTK not installed")


@pytest.fixture
def dcmtk_installed() -> None:
    if not dcmtk_available():
        missing_tool("DCMTK not installed")


needs_tools = pytest.mark.usefixtures("tools_installed")


@needs_tools
def test_harness_against_orthanc(tiny_data: Data, tmp_path: Path) -> None:
    results = Results(["orthanc"])
    port = free_port()
    scp = StoreScp(port, tmp_path)
    try:
        run_server("orthanc", tiny_data, TINY, tmp_path / "orthanc", port, results)
    finally:
        scp.stop()
    # Orthanc 1.10's DICOMweb plugin has /rendered but no /thumbnail and no reformat.
    lacking = {"thumb_p50", "mpr_cold_ms", "mpr_p50"}
    _check_all_figures(results, "orthanc", {"import_ips", *lacking})
    assert results.details["orthanc"]["qido"]["wrong_counts"] == {}
    assert all(results.na["orthanc"][k].startswith("no ") for k in lacking), results.na["orthanc"]
    assert "n/a (no /thumbnail: HTTP 404)" in results.table()


@pytest.mark.usefixtures("dcmtk_installed")
def test_harness_against_yunying(tiny_data: Data, tmp_path: Path) -> None:
    results = Results(["yunying"])
    port = free_port()
    scp = StoreScp(port, tmp_path)
    try:
        run_server("yunying", tiny_data, TINY, tmp_path / "yunying", port, results)
    finally:
        scp.stop()
    run_import(tiny_data, tmp_path / "yunying", results)
    # Yunying must produce every figure: a missing one is a failure of the server or harness.
    _check_all_figures(results, "yunying", set())
    d = results.details["yunying"]
    assert d["time to first image"]["steps_p50_ms"].keys() == {"qido_ms", "metadata_ms", "frame_ms"}
    assert {"series", "instance", "study"} <= d["thumbnails"].keys()
    assert d["MPR"]["sagittal"]["n"] >= 3 and d["cine"]["frames"] == TINY.ct_slices


def test_cli_help() -> None:
    done = subprocess.run([sys.executable, "-m", "benchmarks", "--help"], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0 and "--vs-orthanc" in done.stdout and "--quick" in done.stdout


def test_floors_measure_each_ceiling(tmp_path: Path) -> None:
    if not dcmtk_available():
        missing_tool("DCMTK storescu is not installed")
    done = subprocess.run([sys.executable, "-m", "benchmarks.floors", "--slices", "8", "--out", str(tmp_path)],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    import re

    lines = done.stdout.splitlines()
    for label in ("no-op pynetdicom SCP, 1 assoc", "no-op pynetdicom SCP, 4 assoc",
                  "no-op uvicorn/Starlette", "parse + SHA-256", "DICOM JSON", "syncfs"):
        (line,) = [ln for ln in lines if label in ln]
        figure = re.search(r"([\d,.]+) (inst/s|ms CPU)", line)
        assert figure is not None and float(figure.group(1).replace(",", "")) > 0, line
