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


def live_policy(s: Settings) -> Any:
    """The security admin's policy in the store of these settings (the defaults when unreadable)."""
    from yunying.auth import secpolicy
    from yunying.auth.store import open_store

    if not s.app_database and not (Path(s.data) / "app.sqlite").exists():
        return secpolicy.DEFAULT  # no store yet: never create one just to describe it
    try:
        store = open_store(s.data, s.app_database, s.pii_key_file)
    except Exception:  # noqa: BLE001 - a statement of the defaults beats no statement
        return secpolicy.DEFAULT
    try:
        return secpolicy.load(store)
    finally:
        store.engine.dispose()


def authentication_gaps(p: Any) -> tuple[list[str], list[str]]:
    """What the policy lacks for GB/T 22239 8.1.4.1 a)-d), in (Chinese, English)."""
    rules = [
        (p.password_min_length >= 8 and p.password_classes >= 3, "口令至少 8 位且含 3 类字符",
         "passwords of 8+ characters of 3 kinds"),
        (0 < p.password_max_age_days <= 90, "口令 90 天内定期更换", "passwords changed within 90 days"),
        (p.lockout_failures <= 5, "连续失败 5 次内锁定", "lockout within 5 failures"),
        (p.session_idle_minutes <= 30, "空闲 30 分钟内自动退出", "idle sessions ended within 30 minutes"),
        (p.totp_admins, "管理员双因素认证", "a second factor for administrators"),
    ]
    return [zh for ok, zh, _ in rules if not ok], [en for ok, _, en in rules if not ok]


def controls(s: Settings, policy: Any = None) -> list[Control]:
    """Every control with its status for these settings and the security policy in force."""
    from yunying.audit.chain import ALG

    tls = bool(s.tls_cert)
    dimse_tls = bool(s.dimse_tls_port)
    p = policy if policy is not None else live_policy(s)
    gaps_zh, gaps_en = authentication_gaps(p)
    key_file = pii.key_file_of(s.data, s.pii_key_file)  # None: the keys come from the environment
    keys_outside = key_file is None or Path(s.data).resolve() not in key_file.parents
    return [
        Control("8.1.4.1", "身份鉴别", "Identification and authentication",
                NOT_MET if len(gaps_en) > 2 else PARTLY if gaps_en else MET,
                "每个请求经唯一认证点识别身份，无匿名访问，无默认口令；口令以 Argon2id 散列保存；"
                f"口令至少 {p.password_min_length} 位、含 {p.password_classes} 类字符、不含用户名、不与最近 "
                f"{p.password_history} 次相同、{p.password_max_age_days} 天过期，初始口令首次登录须修改；"
                f"连续失败 {p.lockout_failures} 次锁定 {p.lockout_minutes} 分钟，另按来源地址限速；"
                f"会话空闲 {p.session_idle_minutes} 分钟、最长 {p.session_absolute_hours} 小时结束；"
                + ("管理员角色必须使用 TOTP 第二因素（RFC 6238，防重放，一次性恢复码）。" if p.totp_admins
                   else "管理员未强制第二因素。")
                + ("未满足：" + "、".join(gaps_zh) + "。" if gaps_zh else ""),
                "Every request passes one authentication point; nothing is anonymous; no default passwords; "
                f"passwords are Argon2id hashes of at least {p.password_min_length} characters of "
                f"{p.password_classes} kinds, without the user name, none of the last {p.password_history}, "
                f"expiring after {p.password_max_age_days} days, one-time passwords changed at first login; "
                f"{p.lockout_failures} failures lock an account for {p.lockout_minutes} minutes, and each client "
                f"address is throttled; sessions end after {p.session_idle_minutes} idle minutes or "
                f"{p.session_absolute_hours} hours; "
                + ("administrator roles must use a TOTP second factor (RFC 6238, replays refused, one-time "
                   "recovery codes)." if p.totp_admins else "no second factor is required of administrators.")
                + (" Not met: " + "; ".join(gaps_en) + "." if gaps_en else "")),
        Control("8.1.4.2", "访问控制", "Access control", MET,
                "默认拒绝的策略表；角色授权；医院与科室范围内可见；三员分立：系统管理员（用户、角色、医院、客户端）、"
                "安全管理员（安全策略、第二因素）、审计管理员（审计日志）为不同角色，任何角色或用户不得兼任两者，"
                "三者默认均不能查看患者数据。",
                "A deny-by-default policy table; role-based permissions; studies visible within the "
                "hospital/department scope only; separation of duties: the system administrator (users, "
                "roles, hospitals, clients), the security administrator (the security policy, second factors) "
                "and the audit administrator (the trail) are different roles, no role or user may hold two, and "
                "none of them sees patient data by default."),
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
                "下载附 Repr-Digest（RFC 9530；首次应答在客户端以 Want-Repr-Digest 请求时附带）；存储对象以内容摘要命名；审计记录链式校验。"
                + ("传输使用 TLS 1.2+。" if tls else " 未配置 TLS（tls_cert），传输过程无完整性保护。"),
                "Downloads carry Repr-Digest (RFC 9530; a first answer when the client sends Want-Repr-Digest); "
                "stored versions are named by their digest; "
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


def as_json(s: Settings, policy: Any = None) -> list[dict[str, Any]]:
    return [c.__dict__ for c in controls(s, policy)]


def as_markdown(s: Settings, lang: str = "zh-CN", policy: Any = None) -> str:
    """The statement as Markdown in one language (zh-CN or en)."""
    zh = lang == "zh-CN"
    words = _WORD["zh-CN" if zh else "en"]
    title = "等级保护第三级 应用控制点符合性说明（GB/T 22239-2019）" if zh else \
        "MLPS level 3 application controls (GB/T 22239-2019): how this configuration meets them"
    lines = [f"# {title}", "", "| 条款 | 控制点 | 结论 | 实现方式 |" if zh else "| clause | control | status | how |",
             "|---|---|---|---|"]
    for c in controls(s, policy):
        lines.append(f"| {c.clause} | {c.zh if zh else c.en} | {words[c.status]} | {c.how_zh if zh else c.how_en} |")
    return "\n".join(lines) + "\n"
