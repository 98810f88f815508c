"""A browser (Chromium) fetches series metadata: it arrives encoded, small on the wire, and parses."""
from __future__ import annotations

import tempfile
from typing import Any

from pydicom.uid import generate_uid

from benchmarks.net import YunyingServer
from tests.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.dicomweb.test_coding import smooth_ct, stow

# Resource Timing gives the body's size on the wire (encodedBodySize) and decoded
FETCH = """async (u) => {
  performance.clearResourceTimings();
  const docs = await (await fetch(u, {headers: {Accept: 'application/dicom+json'}, cache: 'no-store'})).json();
  const [t] = performance.getEntriesByName(u);
  return {count: docs.length, encoded: t.encodedBodySize, decoded: t.decodedBodySize};
}"""


def test_chromium_fetches_compressed_metadata(server: YunyingServer, pw: Any) -> None:
    study, series = generate_uid(), generate_uid()
    stow(server, *(smooth_ct(study, series, i, size=32) for i in range(1, 51)))
    url = f"{server.dicomweb_url}/studies/{study}/series/{series}/metadata"
    with tempfile.TemporaryDirectory() as profile:
        browser = pw.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True,
            extra_http_headers=server.headers)
        try:
            page = browser.new_page()
            page.goto(server.dicomweb_url + "/conformance")  # same origin as the fetch
            for _ in range(2):  # the first answer is encoded as it streams, the second is the kept one
                with page.expect_response(url) as seen:
                    got = page.evaluate(FETCH, url)
                response = seen.value
                assert got["count"] == 50
                assert response.headers.get("content-encoding") in ("br", "zstd")  # Chromium offers both
                assert "accept-encoding" in response.headers.get("vary", "").lower()
                assert 0 < got["encoded"] * 10 < got["decoded"]  # bytes on the wire (Resource Timing)
        finally:
            browser.close()
