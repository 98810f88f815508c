"""Conformance: prove an archive against PS3.18 / PS3.4 with real clients, and describe ours.

    yunying conformance check --dicomweb URL [--dimse HOST:PORT:AET] [--move-port PORT]
    yunying conformance statement --out DIR
    yunying conformance ohif --dicomweb URL

(`python -m conformance ...` works the same without the `conformance` word.)
`runner.py` runs the checks in `checks/` (one module per transaction) on test data of its own
(`data.py`); `statement.py` renders `tables.py`; `ohif.py` fetches and serves the OHIF Viewer.
"""
