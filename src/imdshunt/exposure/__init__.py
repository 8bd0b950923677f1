"""IMDSv1 exposure: the migration backlog of instances still handing out v1 credentials.

Library entry point: :func:`exposure_backlog`. Record fields: ``docs/exposure.md``.
"""

from imdshunt.exposure.backlog import (
    DETECTION,
    RANKING_EXPLANATION,
    STATUS_FIXED,
    STATUS_V1_ALLOWED,
    STATUS_V1_USED,
    backlog_sql,
    exposure_backlog,
)

__all__ = [
    "DETECTION",
    "RANKING_EXPLANATION",
    "STATUS_FIXED",
    "STATUS_V1_ALLOWED",
    "STATUS_V1_USED",
    "backlog_sql",
    "exposure_backlog",
]
