"""The MLPS (等保) level-3 control statement (issue 12 part 9): each applicable GB/T 22239-2019
application control (8.1.4, 安全计算环境) and how *this* configuration meets it, generated from
the live settings like the conformance statement; a control switched off shows as not met."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from yunying import pii
from yunying.settings import Settings

MET, PARTLY, NOT_MET = "met", "partly", "not met"
_WORD = {"zh-CN": {MET: "符合", PARTLY: "部分符合", NOT_MET: "不符合"}, "en": {MET: "met", PARTLY: "partly met",
                                                                        NOT_MET: "not met"}}


@dataclass(frozen=True)
class Control:
    clause: str
    zh: str
    en: str
    status: str
    how_zh: str
    how_en: str


def controls(s: Settings) -> list[Control]:
    """Every control with its status for these settings."""
    from yunying.audit.chain import ALG

    tls = bool(s.tls_cert)
    dimse_tls = bool(s.dimse_tls_port)
    policy = getattr(s, "password_min_length", None)  # issue 12 part 4 (password policy), when present
    key_file = pii.key_file_of(s.data, s.pii_key_file)  # None: the keys come from the environment
    keys_outside = key_file is None or Path(s.data).resolve() not in key_file.parents
    return [
        Control("8.1.4.1", "身份鉴别", "Identification and authentication",
                MET if policy else PARTLY,
                "每个请求经唯一认证点识别身份，无匿名访问；口令以 Argon2 散列保存；API 密钥与令牌仅存散列。"
                + ("" if policy else " 口令复杂度、登录失败锁定与会话超时策略未在本配置中启用。"),
                "Every request passes one authentication point; nothing is anonymous; passwords are "
                "Argon2 hashes; keys and tokens are stored hashed."
                + ("" if policy else " Password complexity, lockout and session time-out policy are not "
                   "enabled in this build.")),
        Control("8.1.4.2", "访问控制", "Access control", MET,
                "默认拒绝的策略表；角色授权；医院与科室范围内可见；三员分立（审计管理员不管理用户，管理员不读审计）。",
                "A deny-by-default policy table; role-based permissions; studies visible within the "
                "hospital/department scope only; separation of duties (the audit admin manages no users, "
                "admins do not read the audit trail)."),
        Control("8.1.4.3", "安全审计", "Security audit",
                (MET if s.audit_syslog else PARTLY) if s.audit else NOT_MET,
                (f"审计已开启：每次访问患者数据与安全事件一条记录，含时间、主体、地址、动作、结果、患者与检查；"
                 f"记录以 {ALG} 链式防篡改，保存 {s.audit_retention_days} 天；"
                 + ("实时转发至日志服务器 " + s.audit_syslog + "。" if s.audit_syslog else "未配置外部日志服务器（audit_syslog）。"))
                if s.audit else "审计已关闭（audit = false）。",
                (f"On: one record per access to patient data and per security event (time, principal, "
                 f"address, action, outcome, patient, studies); chained with {ALG}; kept "
                 f"{s.audit_retention_days} days; "
                 + (f"forwarded to {s.audit_syslog}." if s.audit_syslog else "no external collector (audit_syslog)."))
                if s.audit else "Off (audit = false)."),
        Control("8.1.4.7", "数据完整性", "Data integrity", MET if tls else PARTLY,
                "下载附 Repr-Digest（RFC 9530）；存储对象以内容摘要命名；审计记录链式校验。"
                + ("传输使用 TLS 1.2+。" if tls else " 未配置 TLS（tls_cert），传输过程无完整性保护。"),
                "Downloads carry Repr-Digest (RFC 9530); stored versions are named by their digest; "
                "the audit trail is hash-chained." + (" Transport is TLS 1.2+." if tls else
                                                      " No TLS configured (tls_cert): transport is unprotected.")),
        Control("8.1.4.8", "数据保密性", "Data confidentiality",
                MET if tls and dimse_tls else PARTLY if tls else NOT_MET,
                ("HTTPS（TLS 1.2+，HSTS）" if tls else "未启用 HTTPS")
                + ("；DICOM TLS 端口 " + str(s.dimse_tls_port) if dimse_tls else "；DIMSE 未启用 TLS")
                + ("，要求对端证书。" if s.tls_client_ca else "。"),
                ("HTTPS (TLS 1.2+, HSTS)" if tls else "no HTTPS")
                + (f"; DICOM TLS on port {s.dimse_tls_port}" if dimse_tls else "; DIMSE without TLS")
                + (", peer certificates required." if s.tls_client_ca else ".")),
        Control("8.1.4.9", "数据备份恢复", "Data backup and recovery", PARTLY,
                "入库先持久化再建索引，异常停止后自动恢复；yunying check 校验与修复。异地备份由运维按数据目录执行。",
                "Bytes are durable before they are indexed; an unclean stop is recovered at the next "
                "start; `yunying check` verifies and repairs. Off-site backup of the data folder is the "
                "operator's."),
        Control("8.1.4.10", "剩余信息保护", "Residual information protection", MET,
                "令牌与密钥仅存散列，过期令牌定期清除；日志不含患者标识。",
                "Tokens and keys are kept only as hashes and expired ones are swept; logs carry no "
                "patient identifiers."),
        Control("8.1.4.11", "个人信息保护", "Personal information protection", PARTLY if keys_outside else NOT_MET,
                "身份证号、手机号及注册证件照片以 SM4-GCM 加密存储，精确查找使用盲索引（HMAC）；"
                + ("密钥文件位于数据目录之外。" if keys_outside else "密钥文件位于数据目录之内（pii_key_file），备份即泄露密钥。")
                + "日志从不记录患者姓名、ID、电话或令牌；审计可答复“谁看过该患者影像”。用户目录中的联系电话尚未加密。",
                "ID card numbers, phone numbers and registration photos are sealed at rest (SM4-GCM); exact "
                "lookups use blind indexes (HMAC); "
                + ("the key file is outside the data folder. " if keys_outside else
                   "the key file (pii_key_file) is INSIDE the data folder: a backup carries its keys. ")
                + "Logs never contain patient names, IDs, phone numbers or tokens; the audit trail answers "
                "who viewed a patient's images. Staff phone numbers in the user directory are not sealed yet."),
    ]


def as_json(s: Settings) -> list[dict[str, Any]]:
    return [c.__dict__ for c in controls(s)]


def as_markdown(s: Settings, lang: str = "zh-CN") -> str:
    """The statement as Markdown in one language (zh-CN or en)."""
    zh = lang == "zh-CN"
    words = _WORD["zh-CN" if zh else "en"]
    title = "等级保护第三级 应用控制点符合性说明（GB/T 22239-2019）" if zh else \
        "MLPS level 3 application controls (GB/T 22239-2019): how this configuration meets them"
    lines = [f"# {title}", "", "| 条款 | 控制点 | 结论 | 实现方式 |" if zh else "| clause | control | status | how |",
             "|---|---|---|---|"]
    for c in controls(s):
        lines.append(f"| {c.clause} | {c.zh if zh else c.en} | {words[c.status]} | {c.how_zh if zh else c.how_en} |")
    return "\n".join(lines) + "\n"
