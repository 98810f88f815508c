"""Yunying index: the DuckDB study index and the query compiler shared by QIDO-RS and C-FIND."""
from index.db import Index
from index.errors import InvalidQueryValue
from index.model import InstanceRecord, InstanceRow, Origin
from index.parse import parse_match, supported_match_tags, tag_of
from index.query import Level, Match, Query

__all__ = ["Index", "InstanceRecord", "InstanceRow", "InvalidQueryValue", "Level", "Match",
           "Origin", "Query", "parse_match", "supported_match_tags", "tag_of"]
