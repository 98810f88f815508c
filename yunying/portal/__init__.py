"""The patient portal (issue 14): exam QR codes, SMS / ID verification, patient accounts, shares.

Exam tokens and share links are capability tokens of `yunying.auth.tokens` (kind "patient" and
"share"); this package keeps only what the portal adds: which exam a token names, the contact
on record (keyed hashes, never clear text), SMS codes, accounts and their bound exams.
"""
