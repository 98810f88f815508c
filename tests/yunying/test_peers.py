"""The peers file: the short form stays valid (default hospital); the form with a hospital."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from dimse.access import policy_for
from yunying.auth.principal import EVERYTHING, Visibility
from yunying.settings import SettingError, load_peers, load_settings


def test_both_forms_in_one_file(tmp_path: Path) -> None:
    path = tmp_path / "peers.json"
    path.write_text(json.dumps({
        "CT1": ["10.0.0.5", 104],
        "PACS2": {"host": "10.0.1.9", "port": 104, "hospital": "h2", "department": "radiology"},
        "RIS": {"host": "10.0.1.20", "port": 105, "hospital": "h2", "see": ["h2", "h3"]},
        "AUDIT": {"host": "10.0.9.1", "port": 106, "hospital": "h1", "see": "all"}}))
    peers = load_peers(path)
    assert peers["CT1"] == ("10.0.0.5", 104) and peers["PACS2"] == ("10.0.1.9", 104)  # still (host, port)
    policy = policy_for(peers, accept_all=False)
    assert policy.origin("CT1").hospital == "default"
    assert (policy.origin("PACS2").hospital, policy.origin("PACS2").department) == ("h2", "radiology")
    assert policy.visibility("PACS2") == Visibility(hospitals=frozenset({"h2"}))
    assert policy.visibility("RIS") == Visibility(hospitals=frozenset({"h2", "h3"}))
    assert policy.visibility("AUDIT") == EVERYTHING
    assert policy.visibility("UNLISTED") == Visibility(hospitals=frozenset({"default"}))
    # the environment and the config file take the same forms
    settings = load_settings(environ={"YUNYING_PEERS": path.read_text()})
    assert policy_for(settings.peers, False).origin("RIS").hospital == "h2"


@pytest.mark.parametrize("bad", [
    ["10.0.0.5"], {"host": "h", "port": 0}, {"host": "h", "port": 104, "hospital": ""},
    {"host": "h", "port": 104, "see": "some"}, {"host": "h", "port": 104, "see": [1]},
    {"host": "h", "port": 104, "colour": "red"}, {"port": 104}, {"host": "h", "port": True}])
def test_a_bad_entry_is_a_setting_error_naming_it(tmp_path: Path, bad: object) -> None:
    path = tmp_path / "peers.json"
    path.write_text(json.dumps({"BAD": bad}))
    with pytest.raises(SettingError, match="BAD"):
        load_peers(path)
