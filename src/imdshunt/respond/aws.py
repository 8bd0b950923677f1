"""boto3 plumbing for respond: clients with the standard retry mode, caller identity, errors.

Nothing here runs at import time; a :class:`boto3.Session` always comes from the caller.
Retry modes: https://boto3.amazonaws.com/v1/documentation/api/latest/guide/retries.html
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from imdshunt.errors import AwsActionError

#: Standard retry mode: exponential back-off with jitter, retries throttling and 5xx errors.
RETRY_CONFIG = Config(retries={"mode": "standard", "max_attempts": 5})


def client(session: Any, service: str, region: str | None = None, config: Config | None = None):
    """A boto3 client of ``service`` from the caller's session, with standard retries."""
    return session.client(service, region_name=region, config=config or RETRY_CONFIG)


def error_code(exc: BaseException) -> str | None:
    """The AWS error code of a botocore ``ClientError`` (``NoSuchEntity`` ...), else None."""
    if isinstance(exc, ClientError):
        return exc.response.get("Error", {}).get("Code")
    return None


def describe_error(exc: BaseException) -> str:
    """A one-line description of a boto3 failure for humans and the audit log."""
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        op = getattr(exc, "operation_name", "?")
        return f"{op}: {err.get('Code', '?')}: {err.get('Message', str(exc))}"
    return f"{type(exc).__name__}: {exc}"


AWS_ERRORS = (ClientError, BotoCoreError)


@dataclass
class AwsContext:
    """One session and region, with lazily created clients and the caller's identity."""

    session: Any
    region: str | None = None
    _clients: dict[str, Any] = field(default_factory=dict, repr=False)
    _identity: dict[str, str] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.region is None:
            self.region = getattr(self.session, "region_name", None)

    def client(self, service: str):
        """A cached client of ``service`` in this context's region."""
        if service not in self._clients:
            region = "us-east-1" if service in ("iam", "sts") and not self.region else self.region
            self._clients[service] = client(self.session, service, region)
        return self._clients[service]

    @property
    def iam(self):
        return self.client("iam")

    @property
    def ec2(self):
        return self.client("ec2")

    def identity(self) -> dict[str, str]:
        """``sts:GetCallerIdentity`` (needs no IAM permission): who is acting, for the audit."""
        if self._identity is None:
            try:
                ident = self.client("sts").get_caller_identity()
            except AWS_ERRORS as exc:
                raise AwsActionError(f"cannot identify the caller: {describe_error(exc)}") from exc
            self._identity = {
                "arn": ident["Arn"],
                "account": ident["Account"],
                "user_id": ident["UserId"],
            }
        return self._identity
