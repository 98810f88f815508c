"""Every action the trail records and the DICOM audit message it becomes (PS3.15 A.5.3).

One table, so the export (yunying.audit.export) and the syslog forwarder speak one language:
the event ID (PS3.16 CID 400), the action code (EventActionCode: Create, Read, Update, Delete,
Execute) and, where DICOM has one, the event type (CID 401 security alert types, CID 402 user
authentication). `tests/audit/test_action_mapping.py` walks the code for every action name it can
record and fails on one missing here.
"""
from __future__ import annotations

from typing import NamedTuple


class Code(NamedTuple):
    code: str
    meaning: str
    system: str = "DCM"


class Event(NamedTuple):
    event: Code
    verb: str  # EventActionCode (PS3.15 A.5.1): C R U D E
    kind: Code | None = None  # EventTypeCode


# PS3.16 CID 400 Audit Event ID
ACCESSED = Code("110103", "DICOM Instances Accessed")
TRANSFERRED = Code("110104", "DICOM Instances Transferred")
EXPORT = Code("110106", "Export")
PATIENT_RECORD = Code("110110", "Patient Record")
QUERY = Code("110112", "Query")
ALERT = Code("110113", "Security Alert")
AUTHENTICATION = Code("110114", "User Authentication")
AUDIT_LOG_USED = Code("110101", "Audit Log Used")
APPLICATION = Code("110100", "Application Activity")
# PS3.16 CID 401 Security Alert Type, CID 402 User Authentication Type
EMERGENCY = Code("110127", "Emergency Override Started")
SECURITY_CONFIGURATION = Code("110129", "Security Configuration")
SOFTWARE_CONFIGURATION = Code("110131", "Software Configuration")
RESTRICTED_FUNCTION = Code("110132", "Use of Restricted Function")
OBJECT_SECURITY = Code("110135", "Object Security Attributes Changed")
USER_SECURITY = Code("110137", "User security Attributes Changed")
NODE_AUTHENTICATION = Code("110126", "Node Authentication")
LOGIN = Code("110122", "Login")
LOGOUT = Code("110123", "Logout")

ACTIONS: dict[str, Event] = {
    # access to patient data, every face (issue 12 part 1)
    "query": Event(QUERY, "E"),
    "metadata": Event(ACCESSED, "R"),
    "frames": Event(ACCESSED, "R"),
    "rendered": Event(ACCESSED, "R"),
    "thumbnail": Event(ACCESSED, "R"),
    "bulkdata": Event(ACCESSED, "R"),
    "reformat": Event(ACCESSED, "R"),
    "retrieve": Event(TRANSFERRED, "R"),
    "store": Event(TRANSFERRED, "C"),
    "delete": Event(ACCESSED, "D"),  # a study, a series or instances (A.5.3.2)
    "download": Event(EXPORT, "R"),
    "portal": Event(ACCESSED, "R"),  # the patient's own pages: exams, reports, films
    "portal.change": Event(OBJECT_SECURITY, "U"),  # binding, delivery switched off
    "portal.notify": Event(APPLICATION, "E"),
    "share.create": Event(OBJECT_SECURITY, "C"),
    "share.revoke": Event(OBJECT_SECURITY, "D"),
    "records.read": Event(PATIENT_RECORD, "R"),
    "records.collect": Event(PATIENT_RECORD, "C"),
    "records.match": Event(PATIENT_RECORD, "U"),
    "records.change": Event(PATIENT_RECORD, "U"),
    "records.unmerge": Event(PATIENT_RECORD, "U"),
    "patient.merge": Event(PATIENT_RECORD, "U"),
    "mpi.read": Event(PATIENT_RECORD, "R"),
    "mpi.change": Event(PATIENT_RECORD, "U"),
    # identity: sign-in steps, tokens, refusals
    "login": Event(AUTHENTICATION, "E", LOGIN),
    "logout": Event(AUTHENTICATION, "E", LOGOUT),
    "token": Event(AUTHENTICATION, "E", LOGIN),  # the OAuth token endpoint: a client signs in
    "token.exchange": Event(AUTHENTICATION, "E", LOGIN),  # a share's token and access code
    "lockout": Event(ALERT, "E", NODE_AUTHENTICATION),
    "refused": Event(ALERT, "E", NODE_AUTHENTICATION),  # 401/403 at the authorization point
    "password.change": Event(ALERT, "U", USER_SECURITY),
    "totp.enroll": Event(ALERT, "C", USER_SECURITY),
    "break-glass": Event(ALERT, "E", EMERGENCY),
    # administration (separation of duties: every act of the three administrators)
    "admin.change": Event(ALERT, "U", SOFTWARE_CONFIGURATION),
    "security.policy": Event(ALERT, "U", SECURITY_CONFIGURATION),
    "pii.rotate": Event(ALERT, "E", SECURITY_CONFIGURATION),
    "pii.reseal": Event(ALERT, "E", SECURITY_CONFIGURATION),
    "users.": Event(ALERT, "U", USER_SECURITY),  # `yunying users <op>`: every op, by prefix
    "oauth.client.add": Event(ALERT, "C", SECURITY_CONFIGURATION),
    "oauth.client.remove": Event(ALERT, "D", SECURITY_CONFIGURATION),
    "oauth.keys.rotate": Event(ALERT, "C", SECURITY_CONFIGURATION),
    "oauth.keys.prune": Event(ALERT, "D", SECURITY_CONFIGURATION),
    # the trail itself
    "audit.read": Event(AUDIT_LOG_USED, "R"),
    "audit.export": Event(AUDIT_LOG_USED, "R"),
    "audit.verify": Event(AUDIT_LOG_USED, "R"),
    "audit.purge": Event(AUDIT_LOG_USED, "D"),
}
UNKNOWN = Event(ALERT, "E", RESTRICTED_FUNCTION)  # never expected: the walk test keeps ACTIONS whole


def event_of(action: str) -> Event:
    """The DICOM event of an action; a family ("users.") covers its members ("users.add")."""
    found = ACTIONS.get(action)
    if found is None and "." in action:
        found = ACTIONS.get(action.split(".", 1)[0] + ".")
    return found or UNKNOWN
