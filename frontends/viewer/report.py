"""The viewer's measurements as a DICOM SR measurement report (PS3.16 TID 1500), built with
highdicom: one Measurement Group per drawn item, each carrying a Tracking Identifier
"yunying-viewer:<kind>" (as OHIF tags its own) and the SCOORD of what was drawn, referencing
the image (and frame) it was drawn on, so any TID 1500 reader finds the values and the viewer
can draw the same marks again.

Lengths, angles and annotations are TID 1501 groups (a NUM inferred from its SCOORD); regions
are TID 1410 planar ROI groups (area and the modality-value statistics of the region).
"""
from __future__ import annotations

import io
import math
from datetime import datetime
from typing import Any

import highdicom as hd
import numpy as np
from pydicom import Dataset
from pydicom.sr.codedict import codes
from pydicom.uid import generate_uid

TRACKING_PREFIX = "yunying-viewer:"
MAX_COORDINATE = 1_000_000.0
MAX_ITEMS = 500  # a report of more marks than anyone draws on one study is refused
# kind -> (number of points the viewer sends, SCOORD graphic type)
# (0: a freehand path of 3 to MAX_PATH points)
KINDS = {"length": (2, "POLYLINE"), "angle": (3, "POLYLINE"), "roi": (2, "ELLIPSE"), "rect": (2, "POLYLINE"),
         "circle": (2, "CIRCLE"), "freehand": (0, "POLYLINE"), "polygon": (0, "POLYLINE"),
         "cobb": (4, "MULTIPOINT"),
         "ctr": (4, "MULTIPOINT"), "point": (1, "POINT"), "arrow": (2, "POLYLINE"), "text": (1, "POINT")}
REGIONS = ("roi", "rect", "circle", "freehand", "polygon")  # TID 1410 planar ROIs with area and statistics
MAX_PATH = 2000
# the header attributes an SR copies from the images it references (patient, study, frame of reference)
HEADER_TAGS = ("00080005", "00080016", "00080018", "00080020", "00080030", "00080050", "00080060", "00080090",
               "00100010", "00100020", "00100021", "00100030", "00100040", "0020000D", "0020000E", "00200010",
               "00200052", "00280008", "00280030", "00181164")

TYPE2 = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
         "ReferringPhysicianName", "StudyID", "AccessionNumber")


class InvalidReport(ValueError):
    """The viewer's JSON does not describe a report (the route answers 400 with the message)."""


def code(value: str, scheme: str, meaning: str) -> hd.sr.CodedConcept:
    return hd.sr.CodedConcept(value=value, scheme_designator=scheme, meaning=meaning)


def ucum(value: str, meaning: str) -> hd.sr.CodedConcept:
    return code(value, "UCUM", meaning)


MM, MM2, DEG, PX, PX2 = (ucum("mm", "millimeter"), ucum("mm2", "square millimeter"), ucum("deg", "degree"),
                         ucum("{pixels}", "pixels"), ucum("{pixels2}", "square pixels"))
LENGTH, AREA, ANGLE = code("410668003", "SCT", "Length"), code("42798000", "SCT", "Area"), code("1483009", "SCT", "Angle")
COBB = code("285285000", "SCT", "Cobb angle")
CTR = code("CTR", "99YUNYING", "Cardiothoracic ratio")  # private: no standard code found for the ratio
ATTENUATION, POINT_VALUE = code("112031", "DCM", "Attenuation Coefficient"), code("PV", "99YUNYING", "Pixel value")
IMAGE_REGION = code("111030", "DCM", "Image Region")
COMMENT = code("121106", "DCM", "Comment")  # the label; OHIF shows a group's Comment as its label
STATS = {"mean": code("373098007", "SCT", "Mean"), "sd": code("386136009", "SCT", "Standard Deviation"),
         "min": code("255605001", "SCT", "Minimum"), "max": code("56851009", "SCT", "Maximum")}


def _number(x: Any, what: str) -> float:
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
        raise InvalidReport(f"{what}: a finite number expected")
    return float(x)


def _points(item: dict[str, Any], n: int, i: int) -> np.ndarray:
    pts = item.get("points")
    if not isinstance(pts, list) or not (3 <= len(pts) <= MAX_PATH if n == 0 else len(pts) == n) \
            or not all(isinstance(p, list) and len(p) == 2 for p in pts):
        raise InvalidReport(f"measurements[{i}].points: {n or f'3 to {MAX_PATH}'} [column, row] pairs expected")
    out = np.array([[_number(c, f"measurements[{i}].points") for c in p] for p in pts], dtype=np.float64)
    if np.abs(out).max() > MAX_COORDINATE:  # SCOORDs are 32-bit floats in image pixels
        raise InvalidReport(f"measurements[{i}].points: within ±{MAX_COORDINATE} pixels")
    return out.astype(np.float32)


def person_name(user: str) -> str:
    """A user id as a DICOM person name: the whole id as the family name (a trailing caret)."""
    name = "".join(c for c in user if c not in "\\=^")[:60] or "Unknown"
    return name + "^"


def header_of(meta: Any, sop: str) -> Dataset:
    """A referenced image's header from its DICOM JSON (only the attributes an SR copies)."""
    if not isinstance(meta, dict):
        raise InvalidReport(f"images[{sop}]: DICOM JSON expected")
    try:
        ds = Dataset.from_json({t: v for t, v in meta.items() if t in HEADER_TAGS})
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        raise InvalidReport(f"images[{sop}]: not DICOM JSON ({exc})") from None
    for kw in ("SOPClassUID", "StudyInstanceUID", "SeriesInstanceUID"):
        if not ds.get(kw):
            raise InvalidReport(f"images[{sop}]: {kw} is required")
    if ds.get("SOPInstanceUID", sop) != sop:
        raise InvalidReport(f"images[{sop}]: SOPInstanceUID differs from its key")
    ds.SOPInstanceUID = sop
    for kw in TYPE2:  # PS3.3 C.7.1.1, C.7.2.1: present, maybe empty (highdicom copies them)
        if kw not in ds:
            setattr(ds, kw, "")
    ds.SpecificCharacterSet = "ISO_IR 192"  # JSON is Unicode: the SR says UTF-8
    return ds


def _source(ds: Dataset, frame: int, multi: bool) -> hd.sr.SourceImageForRegion:
    return hd.sr.SourceImageForRegion(ds.SOPClassUID, ds.SOPInstanceUID, [frame] if multi else None)


def _outline(kind: str, pts: np.ndarray) -> np.ndarray:
    """A region's SCOORD: an ellipse's axes, a circle's centre and rim point, else a closed polyline."""
    if kind == "roi":
        (x0, y0), (x1, y1) = pts
        cx, cy, rx, ry = (x0 + x1) / 2, (y0 + y1) / 2, abs(x1 - x0) / 2, abs(y1 - y0) / 2
        axes = [[cx - rx, cy], [cx + rx, cy], [cx, cy - ry], [cx, cy + ry]]
        if ry > rx:  # PS3.3 C.18.6.1.2: the major axis first
            axes = axes[2:] + axes[:2]
        return np.array(axes, dtype=np.float32)
    if kind == "circle":
        return pts
    if kind == "rect":
        (x0, y0), (x1, y1) = pts
        pts = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float32)
    return np.concatenate([pts, pts[:1]])  # PS3.3 C.18.6.1.1: a closed polyline ends where it began


def _group(kind: str, item: dict[str, Any], i: int, ds: Dataset, multi: bool) -> Any:
    frame = item.get("frame", 1)
    if not isinstance(frame, int) or isinstance(frame, bool) or frame < 1:
        raise InvalidReport(f"measurements[{i}].frame: a frame number from 1 expected")
    count, shape = KINDS[kind]
    pts = _points(item, count, i)
    tracking = hd.sr.TrackingIdentifier(uid=generate_uid(), identifier=TRACKING_PREFIX + kind)
    calibrated = item.get("unit", "mm") == "mm"
    if kind in REGIONS:
        region = hd.sr.ImageRegion(hd.sr.GraphicTypeValues[shape], _outline(kind, pts), _source(ds, frame, multi))
        stats = item.get("stats") or {}
        if not isinstance(stats, dict):
            raise InvalidReport(f"measurements[{i}].stats: an object expected")
        unit = ucum("[hnsf'U]", "Hounsfield unit") if ds.get("Modality") == "CT" else ucum("1", "no units")
        found = [hd.sr.Measurement(AREA, _number(item.get("value"), f"measurements[{i}].value"), MM2 if calibrated else PX2)]
        found += [hd.sr.Measurement(name, _number(stats[key], f"measurements[{i}].stats.{key}"), unit)
                  for key, name in STATS.items() if key in stats]
        return hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
            tracking_identifier=tracking, referenced_region=region, measurements=found)
    if kind in ("arrow", "text"):
        # where it points as the group's own SCOORD (as TID 1410 holds its region; readers such as
        # OHIF draw a group from it) and the label as a Comment
        text = item.get("text") or ("Arrow" if kind == "arrow" else None)
        if not isinstance(text, str) or not text.strip():
            raise InvalidReport(f"measurements[{i}].text: the label is required")
        at = hd.sr.ScoordContentItem(IMAGE_REGION, shape, pts, relationship_type=hd.sr.RelationshipTypeValues.CONTAINS)
        at.ContentSequence = hd.sr.ContentSequence([_source(ds, frame, multi)])
        group = hd.sr.MeasurementsAndQualitativeEvaluations(tracking_identifier=tracking)
        group[0].ContentSequence.extend([at, hd.sr.TextContentItem(COMMENT, text.strip()[:1024],
                                                                    hd.sr.RelationshipTypeValues.CONTAINS)])
        return group
    where = hd.sr.CoordinatesForMeasurement(shape, pts, _source(ds, frame, multi))
    if kind == "point":
        name, unit = (ATTENUATION, ucum("[hnsf'U]", "Hounsfield unit")) if ds.get("Modality") == "CT" else (POINT_VALUE, ucum("1", "no units"))
    else:
        name, unit = {"length": (LENGTH, MM if calibrated else PX), "angle": (ANGLE, DEG), "cobb": (COBB, DEG),
                      "ctr": (CTR, ucum("1", "ratio"))}[kind]
    value = _number(item.get("value"), f"measurements[{i}].value")
    return hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=tracking, measurements=[hd.sr.Measurement(name, value, unit, referenced_coordinates=[where])])


def measurement_report(body: Any, observer: str, when: datetime | None = None) -> bytes:
    """The viewer's JSON ({images: {sop: DICOM JSON}, measurements: [...]}) as a Part 10 SR."""
    if not isinstance(body, dict):
        raise InvalidReport("a JSON object expected")
    images, items = body.get("images"), body.get("measurements")
    if not isinstance(images, dict) or not images:
        raise InvalidReport("images: the headers of the measured images are required")
    if not isinstance(items, list) or not items or len(items) > MAX_ITEMS:
        raise InvalidReport(f"measurements: 1 to {MAX_ITEMS} items expected")
    headers = {sop: header_of(meta, sop) for sop, meta in images.items()}
    studies = {str(ds.StudyInstanceUID) for ds in headers.values()}
    if len(studies) != 1:
        raise InvalidReport("images: all from one study")
    groups = []
    for i, item in enumerate(items):
        if not isinstance(item, dict) or item.get("kind") not in KINDS:
            raise InvalidReport(f"measurements[{i}].kind: one of {', '.join(KINDS)}")
        ds = headers.get(item.get("sop"))  # type: ignore[arg-type]
        if ds is None:
            raise InvalidReport(f"measurements[{i}].sop: not among images")
        try:
            groups.append(_group(item["kind"], item, i, ds, int(ds.get("NumberOfFrames", 1) or 1) > 1))
        except InvalidReport:
            raise
        except (ValueError, TypeError) as exc:  # highdicom's own checks of the values it is given
            raise InvalidReport(f"measurements[{i}]: {exc}") from None
    context = hd.sr.ObservationContext(
        observer_person_context=hd.sr.ObserverContext(
            observer_type=codes.DCM.Person,
            observer_identifying_attributes=hd.sr.PersonObserverIdentifyingAttributes(name=person_name(observer))),
        observer_device_context=hd.sr.ObserverContext(
            observer_type=codes.DCM.Device,
            observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
                uid=generate_uid(entropy_srcs=["yunying-viewer"]), name="Yunying viewer")))
    report = hd.sr.MeasurementReport(
        observation_context=context, procedure_reported=code("363679005", "SCT", "Imaging procedure"),
        imaging_measurements=groups, title=codes.DCM.ImagingMeasurementReport)
    when = when or datetime.now()
    study = studies.pop()
    sr = hd.sr.ComprehensiveSR(
        evidence=list(headers.values()), content=report[0],
        series_instance_uid=generate_uid(entropy_srcs=[study, "yunying-viewer-measurements"]),  # one series per study
        series_number=990, sop_instance_uid=generate_uid(), instance_number=int(when.timestamp()) % 2**31,
        manufacturer="Yunying", is_complete=True, series_description="Measurements (viewer)")
    sr.SpecificCharacterSet = "ISO_IR 192"
    scheme = Dataset()  # PS3.3 C.12.1.1.2.1: a private coding scheme is identified
    scheme.CodingSchemeDesignator, scheme.CodingSchemeName = "99YUNYING", "Yunying viewer"
    scheme.CodingSchemeResponsibleOrganization = "Yunying"
    sr.CodingSchemeIdentificationSequence = [scheme]
    out = io.BytesIO()
    sr.save_as(out, enforce_file_format=True)
    return out.getvalue()
