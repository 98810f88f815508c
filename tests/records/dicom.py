"""Small DICOM instances for the record tests (no pixel data needed)."""
from __future__ import annotations

import io

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid


def instance(patient_id: str, study: str, accession: str = "", date: str = "20260301", modality: str = "CT",
             name: str = "ZHANG^SAN") -> bytes:
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.PatientID, ds.PatientName, ds.PatientSex, ds.PatientBirthDate = patient_id, name, "F", "19491231"
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID = study, generate_uid(), generate_uid()
    ds.SOPClassUID, ds.Modality, ds.AccessionNumber, ds.StudyDate = CTImageStorage, modality, accession, date
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID, ds.file_meta.MediaStorageSOPInstanceUID = CTImageStorage, ds.SOPInstanceUID
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()
