"""The least-privilege IAM policy imdshunt needs: kept here for imports, derived in
:mod:`imdshunt.permissions` from what each call site declares."""

from __future__ import annotations

from imdshunt.permissions import (
    COMMANDS,
    Permission,
    declared_permissions,
    iam_policy,
    print_iam_policy,
)

#: The parts a policy can be printed for (``respond``, ``collect``, ``guardduty``).
PARTS = tuple(COMMANDS)

__all__ = ["PARTS", "Permission", "declared_permissions", "iam_policy", "print_iam_policy"]
