"""Generator of realistic synthetic AWS organisations for tests, the demo and benchmarks.

:func:`generate_org` writes CloudTrail in the S3 delivery layout, ALB access logs, inventory and
IAM JSON as the AWS CLI prints them, a consistent ``ip-ranges.json`` and a
:class:`GroundTruth` (also written as ``ground_truth.json``) listing every planted attack.
"""

from .generate import generate_org
from .truth import GroundTruth

__all__ = ["GroundTruth", "generate_org"]
