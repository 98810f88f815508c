"""HL7 v2 messages the tests send (Chinese names, ID card numbers with correct check digits)."""
from __future__ import annotations

import base64

from tests.records.conftest import id_card


def msh(kind: str, control: str, charset: str = "UNICODE UTF-8", version: str = "2.5") -> str:
    return f"MSH|^~\\&|HIS|H1|YUNYING|YY|20260301120000||{kind}|{control}|P|{version}|||||CHN|{charset}"


def obr(fields: dict[int, str]) -> str:
    """An OBR segment from {field number: value}."""
    return "|".join(["OBR"] + [fields.get(i, "") for i in range(1, max(fields) + 1)])


def adt(event: str = "A01", control: str = "M1", pid: str = "P001", name: str = "张^三", card: str | None = None,
        charset: str = "UNICODE UTF-8", ip_no: str = "ZY001") -> str:
    card = id_card() if card is None else card
    return "\r".join([
        msh(f"ADT^{event}^ADT_A01", control, charset), f"EVN|{event}|20260301120000",
        f"PID|1||{pid}^^^HIS1^MR~{card}^^^CHN^NNCHN||{name}||19491231|F|||北京市朝阳区^^北京^^100020||13800138000",
        f"PV1|1|I|放射科^305^12||||||||||||||||{ip_no}"]) + "\r"


def merge(event: str, control: str, survivor: str, prior: str) -> str:
    return "\r".join([
        msh(f"ADT^{event}^ADT_A39", control), f"EVN|{event}|20260301120000",
        f"PID|1||{survivor}^^^HIS1^MR||张^三||19491231|F", f"MRG|{prior}^^^HIS1^MR"]) + "\r"


def orm(control: str = "O1", pid: str = "P001", accession: str = "ACC001", item: str = "胸部CT平扫") -> str:
    return "\r".join([
        msh("ORM^O01^ORM_O01", control), f"PID|1||{pid}^^^HIS1^MR||张^三||19491231|F",
        "PV1|1|O|门诊^^||||||||||||||||MZ9", f"ORC|NW|{accession}|{accession}||SC",
        obr({1: "1", 2: accession, 3: accession, 4: f"CT001^{item}", 7: "20260301130000", 13: "咳嗽两周",
             18: accession, 24: "CT"})]) + "\r"


def oru(control: str = "R1", pid: str = "P001", accession: str = "ACC001") -> str:
    pdf = base64.b64encode(b"%PDF-1.4 report").decode()
    return "\r".join([
        msh("ORU^R01^ORU_R01", control), f"PID|1||{pid}^^^HIS1^MR||张^三||19491231|F",
        obr({1: "1", 2: accession, 3: accession, 4: "CT001^胸部CT平扫", 7: "20260301140000", 18: accession,
             22: "20260301150000", 25: "F", 32: "D01&李&医生", 33: "D02&王&主任"}),
        "OBX|1|TX|FINDINGS^检查所见||双肺纹理清晰。||||||F",
        "OBX|2|TX|IMPRESSION^诊断意见||未见明显异常。||||||F",
        f"OBX|3|ED|PDF^报告||^AP^PDF^Base64^{pdf}||||||F"]) + "\r"
