"""The pieces without a network: the jobs registry and its metrics, answer checking, schedules,
retention classes (issue 15 parts 1, 6, 8)."""
from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import pytest

from yunying import jobs
from yunying.collect.port import check_matches
from yunying.collect.service import next_run
from yunying.lifecycle.retention import parse_retention, study_date
from yunying.settings import SettingError, load_settings


def test_the_registry_lists_every_provider_and_survives_a_broken_one() -> None:
    jobs.register("t-ok", lambda: [{"kind": "hl7", "name": "mllp:2575", "counts": {"messages_total": 3, "queued": 2,
                                                                                   "bad": "x"}}])
    jobs.register("t-broken", lambda: 1 / 0)  # type: ignore[arg-type, return-value]  # a job that fails, on purpose
    try:
        listed = {(j["kind"], j["name"]): j for j in jobs.all_jobs()}
        ok = listed[("hl7", "mllp:2575")]
        assert ok["state"] == "idle" and ok["counts"] == {"messages_total": 3, "queued": 2}  # numbers only
        assert set(jobs.FIELDS) <= set(ok)
        broken = listed[("t-broken", "t-broken")]
        assert broken["state"] == "failed" and "ZeroDivisionError" in broken["errors"][0]
        text = jobs.metrics_text()
        assert "# TYPE yunying_hl7_messages_total counter" in text
        assert 'yunying_hl7_messages_total{kind="hl7",name="mllp:2575"} 3' in text
        assert "# TYPE yunying_hl7_queued gauge" in text
    finally:
        jobs.unregister("t-ok")
        jobs.unregister("t-broken")
    assert all(j["kind"] != "hl7" for j in jobs.all_jobs())


def test_metrics_escape_labels_and_keep_timestamps_exact() -> None:
    text = jobs.metrics_text([jobs.normalise({"kind": "collect", "name": 'a"b\\c', "last_run": 1796632410.737024,
                                              "state": "nonsense"})])
    assert 'name="a\\"b\\\\c"' in text
    assert "yunying_job_last_run_timestamp_seconds" in text and "1796632410.737024" in text
    assert 'yunying_job_failed{kind="collect",name="a\\"b\\\\c"} 1' in text  # an unknown state is a failure
    assert jobs.normalise({"state": "sending"})["state"] == "running"  # routing's word for it


def test_answers_without_a_valid_uid_or_count_are_garbage_and_repeats_are_dropped() -> None:
    checked = check_matches([
        {"StudyInstanceUID": "1.2.3", "NumberOfStudyRelatedInstances": "4", "SOPClassesInStudy": "1.2\\junk"},
        {"StudyInstanceUID": "1.2.3", "NumberOfStudyRelatedInstances": "4"},
        {"StudyInstanceUID": "x.y", "NumberOfStudyRelatedInstances": "4"},
        {"StudyInstanceUID": "1." + "2" * 70, "NumberOfStudyRelatedInstances": "4"},
        {"StudyInstanceUID": "1.2.4", "NumberOfStudyRelatedInstances": "many"},
        {"StudyInstanceUID": "1.2.5", "NumberOfStudyRelatedInstances": ""},
    ], "StudyInstanceUID", "NumberOfStudyRelatedInstances")
    assert [(m.uid, m.instances) for m in checked.matches] == [("1.2.3", 4), ("1.2.4", None), ("1.2.5", None)]
    assert checked.matches[0].sop_classes == ("1.2",)
    assert (checked.garbage, checked.duplicates) == (3, 1)


def test_several_runs_a_day_from_cron_expressions() -> None:
    at = datetime(2026, 12, 7, 12, 30).timestamp()
    nxt = next_run(("0 7,12,18 * * *", "30 23 * * *"), at)
    assert nxt is not None and datetime.fromtimestamp(nxt) == datetime(2026, 12, 7, 18, 0)
    assert next_run((), at) is None


def test_retention_classes_by_rule(tmp_path: Path) -> None:
    settings = load_settings(overrides={
        "data": tmp_path,
        "retention_years": [{"class": "forever", "years": 100}],
        "retention_rules": [{"class": "inpatient", "when": {"AdmissionID": "*"}},
                            {"class": "forever", "when": {"Modality": "MG", "InstitutionName": "*肿瘤*"}}]},
        environ={})
    r = parse_retention(settings)
    inpatient = {"00380010": {"vr": "LO", "Value": ["ZY2026001"]}, "00080020": {"vr": "DA", "Value": ["20240229"]}}
    assert r.classify(inpatient) == "inpatient"
    assert r.until("inpatient", study_date(inpatient) or date.today()) == date(2054, 2, 28)  # no 29 Feb in 2054
    assert r.classify({"00080060": {"vr": "CS", "Value": ["MG"]},
                       "00080080": {"vr": "LO", "Value": ["某市肿瘤医院"]}}) == "forever"
    assert r.classify({"00080060": {"vr": "CS", "Value": ["MG"]}}) == "outpatient"
    assert r.until("outpatient", date(2026, 1, 5)) == date(2041, 1, 5)


@pytest.mark.parametrize("overrides, says", [
    ({"retention_rules": [{"class": "nope", "when": {"Modality": "CT"}}]}, "unknown class"),
    ({"retention_rules": [{"class": "inpatient", "when": {"NotAKeyword": "x"}}]}, "DICOM keyword"),
    ({"retention_years": [{"class": "x", "years": 0}]}, "years"),
    ({"retention_default": "eternal"}, "retention_default"),
    ({"cache_high_water": 70, "cache_low_water": 80}, "low < high"),
    ({"delivery_cache_bytes": -1}, "delivery_cache_bytes"),
])
def test_bad_lifecycle_settings_are_refused(tmp_path: Path, overrides: dict, says: str) -> None:
    with pytest.raises(SettingError, match=says):
        load_settings(overrides={"data": tmp_path, **overrides}, environ={})
