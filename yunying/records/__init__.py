"""Patient, visit, exam and report records from hospital systems (issue 15 parts 2-4).

Sources: database views and intermediate tables (`sql.py`), JSON web services (`webservice.py`), SOAP (`soap.py`),
HL7 v2 over MLLP (`hl7in.py`, `mllp.py`); one declarative mapping of their fields
(`mapping.py`); one transactional store (`store.py`, tables in `schema.py`) with personal data
sealed (yunying/pii.py); images matched to exams (`matching.py`); subscribers (`events.py`).
"""
