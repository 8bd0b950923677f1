"""Metadata-service SSRF: normalisation of addresses in requests and the ``url_class`` table."""

from imdshunt.ssrf.normalize import SsrfMatch, classify_host, classify_request, normalize_url
from imdshunt.ssrf.urlclass import URL_CLASS, classify_urls

__all__ = [
    "URL_CLASS",
    "SsrfMatch",
    "classify_host",
    "classify_request",
    "classify_urls",
    "normalize_url",
]
