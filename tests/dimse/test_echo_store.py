"""C-ECHO and C-STORE against DCMTK's echoscu / storescu."""
from __future__ import annotations

from pathlib import Path

import pydicom
import pytest
from conftest import SCP_AET, SCU_AET, make_instance, run, sample_file, stored_dataset, stored_sops

# sample file -> storescu's flag proposing its transfer syntax (it offers only uncompressed otherwise)
COMPRESSED = {"SC_rgb_jpeg_dcmtk.dcm": "-xy", "JPGExtended.dcm": "-xx", "JPEG2000.dcm": "-xw",
              "MR_small_jp2klossless.dcm": "-xv", "MR_small_jpeg_ls_lossless.dcm": "-xt",
              "MR_small_RLE.dcm": "-xr"}


def test_echo_from_unknown_ae(scp) -> None:
    res = run("echoscu", "-aet", "STRANGER", "-aec", SCP_AET, "127.0.0.1", str(scp.port))
    assert res.returncode == 0, res.stderr


def test_store_refused_for_unknown_ae(scp, archive, tmp_path: Path) -> None:
    f = make_instance(tmp_path / "a.dcm", study="1.2.3", series="1.2.3.1", sop="1.2.3.1.1")
    res = run("storescu", "-aet", "STRANGER", "-aec", SCP_AET, "127.0.0.1", str(scp.port), str(f))
    assert res.returncode != 0
    assert "Calling AE Title Not Recognized" in res.stderr + res.stdout
    assert not stored_sops(archive)


@pytest.mark.parametrize("flag", ["-xs", "-xi", "-xe", "-xb"])
def test_store_uncompressed_syntaxes(scp, archive, tmp_path: Path, flag: str) -> None:
    f = make_instance(tmp_path / "a.dcm", study="1.2.3", series="1.2.3.1", sop="1.2.3.1.1")
    res = run("storescu", flag, "-aet", SCU_AET, "-aec", SCP_AET, "127.0.0.1", str(scp.port), str(f))
    assert res.returncode == 0, res.stderr
    ds = stored_dataset(archive, "1.2.3.1.1")
    assert ds.PixelData == pydicom.dcmread(f).PixelData


@pytest.mark.parametrize("name", sorted(COMPRESSED))
def test_store_compressed_as_received(scp, archive, name: str) -> None:
    src = sample_file(name)
    res = run("storescu", COMPRESSED[name], "-aet", SCU_AET, "-aec", SCP_AET, "127.0.0.1", str(scp.port), str(src))
    assert res.returncode == 0, res.stderr + res.stdout
    original = pydicom.dcmread(src)
    stored = stored_dataset(archive, original.SOPInstanceUID)
    assert stored.file_meta.TransferSyntaxUID == original.file_meta.TransferSyntaxUID
    assert stored.PixelData == original.PixelData


def test_store_many_files_one_association(scp, archive, tmp_path: Path) -> None:
    for i in range(20):
        make_instance(tmp_path / f"{i}.dcm", study="1.2.3", series="1.2.3.1", sop=f"1.2.3.1.{i}")
    res = run("storescu", "+sd", "-aet", SCU_AET, "-aec", SCP_AET, "127.0.0.1", str(scp.port), str(tmp_path))
    assert res.returncode == 0, res.stderr
    assert len(stored_sops(archive)) == 20


def test_the_server_loop_forces_no_full_collection(scp, monkeypatch: pytest.MonkeyPatch) -> None:
    """pynetdicom's loop would call gc.collect() at every 60th connection or poll; ours does not
    (a full collection of the server's heap stalls every association, issue 9)."""
    import gc

    from pynetdicom import AE

    forced: list[int] = []
    real = gc.collect

    def counted(*a: int) -> int:
        forced.append(1)
        return real(*a)

    monkeypatch.setattr(gc, "collect", counted)
    ae = AE(ae_title=SCU_AET)
    ae.add_requested_context("1.2.840.10008.1.1")
    for _ in range(65):  # each connection is one turn of the server's loop
        assoc = ae.associate("127.0.0.1", scp.port, ae_title=SCP_AET)
        assert assoc.is_established
        assert assoc.send_c_echo().Status == 0
        assoc.release()
    assert forced == []
