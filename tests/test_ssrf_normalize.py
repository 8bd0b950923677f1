"""Specification of the metadata-address normaliser (issue 6, part 2)."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imdshunt.errors import ImdshuntError, UsageError
from imdshunt.ssrf.normalize import (
    classify_host,
    classify_request,
    full_decode,
    idna_map_host,
    normalize_url,
    parse_ipv4,
)

DATA = Path(__file__).parent / "data" / "ssrf"


def _rows(name: str) -> list[list[str]]:
    out = []
    for line in (DATA / name).read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            out.append(line.split("\t"))
    return out


ATTACKS = _rows("attacks.tsv")
DECOYS = _rows("decoys.tsv")


def _classify(where: str, value: str):
    return classify_request(value) if where == "url" else classify_request(None, host=value)


@pytest.mark.parametrize(
    ("where", "endpoint", "value", "source"), ATTACKS, ids=[r[2][:60] for r in ATTACKS]
)
def test_each_attack_of_the_corpus_is_caught(where, endpoint, value, source):
    match = _classify(where, value)
    assert match is not None, f"missed ({source}): {value}"
    assert match.endpoint == endpoint


@pytest.mark.parametrize(("where", "value", "why"), DECOYS, ids=[r[1][:60] for r in DECOYS])
def test_no_decoy_fires(where, value, why):
    assert _classify(where, value) is None, why


def test_corpora_are_not_trivially_small():
    assert len(ATTACKS) >= 60 and len(DECOYS) >= 25


@pytest.mark.parametrize(
    ("host", "labels"),
    [
        ("169.254.169.254", ("dotted",)),
        ("2852039166", ("integer",)),
        ("0xA9FEA9FE", ("hex",)),
        ("0251.0376.0251.0376", ("octal",)),
        ("169.254.43518", ("short",)),
        ("169.16689662", ("short",)),
        ("0251.254.169.254", ("octal", "mixed")),
        ("[::ffff:a9fe:a9fe]", ("ipv4-mapped-ipv6",)),
        ("instance-data", ("dns-name",)),
        ("169-254-169-254.sslip.io", ("dns-name", "dashed")),
        ("169。254。169。254", ("dotted", "idna")),
        ("⓪ⓧⓐ⑨ⓕⓔⓐ⑨ⓕⓔ", ("hex", "idna")),
    ],
)
def test_the_encoding_label_says_how_the_host_was_written(host, labels):
    hm = classify_host(host)
    assert hm is not None and hm.endpoint == "ec2-imds-ipv4"
    for label in labels:
        assert label in hm.encodings


def test_layers_of_percent_encoding_are_labelled():
    once = classify_request("/f?u=http%3A%2F%2F169.254.169.254%2F")
    twice = classify_request("/f?u=http%253A%252F%252F169.254.169.254%252F")
    assert "percent-encoded" in once.encodings
    assert "double-percent-encoded" in twice.encodings
    assert twice.decoded == "http://169.254.169.254/"


def test_a_metadata_credentials_path_raises_confidence():
    bare = classify_request("/f?u=http://169.254.169.254/")
    creds = classify_request(
        "/f?u=http://169.254.169.254/latest/meta-data/iam/security-credentials/"
    )
    assert bare.confidence == "medium"
    assert creds.confidence == "high"


def test_overflowed_forms_are_reported_with_lower_confidence():
    m = classify_request("/f?u=http://425.510.425.510/")
    assert m is not None and "overflow" in m.encodings and m.confidence == "low"


def test_the_alb_url_authority_is_the_host_header():
    m = classify_request("http://169.254.169.254:80/latest/api/token")
    assert m.location == "host-header" and "host-header" in m.encodings
    assert m.confidence == "high"


def test_an_ordinary_alb_url_carrying_an_embedded_url_is_an_embedded_url():
    m = classify_request("https://shop.example.com:443/fetch?img=http://0xa9fea9fe/")
    assert m.location == "url" and "embedded-url" in m.encodings and "hex" in m.encodings


def test_waf_headers_are_searched():
    m = classify_request("/", headers={"X-Forwarded-Host": "169.254.169.254"})
    assert m is not None and m.location == "host-header"
    m = classify_request("/", headers={"X-Callback": "http://[fd00:ec2::254]/latest/meta-data/"})
    assert m is not None and m.endpoint == "ec2-imds-ipv6" and m.location == "header"


def test_a_referer_naming_the_address_is_not_a_request_for_it():
    assert classify_request("/", headers={"Referer": "http://169.254.169.254/"}) is None


def test_a_logged_body_is_searched():
    m = classify_request("/api/import", body='{"source": "http://169.254.170.2/v2/credentials/x"}')
    assert m is not None and m.endpoint == "ecs-credentials" and m.location == "body"


def test_non_text_arguments_are_a_usage_error():
    with pytest.raises(UsageError):
        classify_request(b"/x")  # type: ignore[arg-type]
    with pytest.raises(UsageError):
        normalize_url(None)  # type: ignore[arg-type]


def test_normalize_url_rewrites_hosts_to_the_canonical_literal():
    assert (
        normalize_url("/f?u=http%3A%2F%2F0xA9FEA9FE%2Flatest")
        == "/f?u=http://169.254.169.254/latest"
    )
    assert (
        normalize_url("/f?u=http://[0:0:0:0:0:ffff:a9fe:a9fe]/") == "/f?u=http://169.254.169.254/"
    )


def test_hosts_are_mapped_as_idna_resolvers_map_them():
    """RFC 3490 3.1 / UTS #46: the ideographic, fullwidth and halfwidth full stops are dots."""
    assert idna_map_host("169。254。169。254") == "169.254.169.254"
    assert idna_map_host("169．254｡169。254") == "169.254.169.254"
    assert idna_map_host("⑯⑨。②⑤④。⑯⑨｡②⑤④") == "169.254.169.254"
    assert idna_map_host("Shop.Example.COM") == "shop.example.com"
    # a character IDNA disallows does not stop the others from being mapped
    assert idna_map_host("169。254。169。254\ufffd") == "169.254.169.254\ufffd"


def test_the_idna_mapping_agrees_with_the_system_resolver():
    """What getaddrinfo connects to is what the normaliser says (Python's IDNA codec)."""
    host = "169。254。169。254"
    resolved = {ai[4][0] for ai in socket.getaddrinfo(host, 80, socket.AF_INET)}
    assert resolved == {"169.254.169.254"}
    assert classify_host(host).address == "169.254.169.254"


def test_normalize_url_rewrites_idna_dotted_hosts():
    assert normalize_url("/f?u=http://169。254。169。254/latest") == (
        "/f?u=http://169.254.169.254/latest"
    )
    # other hosts written with ideographic stops are left as written
    assert normalize_url("/f?u=http://10。0。0。1/") == "/f?u=http://10。0。0。1/"


def test_full_decode_peels_every_layer():
    assert full_decode("%25252F") == ("/", 3, False)


# ---------------------------------------------------------------- properties

_PIECES = list("htp:/?&=.%25AFaf0123456789x[]@:#\\ -①ａ。．｡⑯ⓧ\ufffd\x00") + [
    "169.254.169.254",
    "http://",
    "%25",
    "%2F",
    "0xa9fea9fe",
    "[::ffff:",
    "/latest/meta-data/",
    "169。254。169。254",
    "%E3%80%82",
    "\udce3",
]
_urlish = st.lists(st.sampled_from(_PIECES), max_size=25).map("".join)


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.text(max_size=80), _urlish))
def test_normalisation_is_idempotent(text):
    once = normalize_url(text)
    assert normalize_url(once) == once


@settings(max_examples=600, deadline=None)
@given(
    st.one_of(st.text(max_size=40), st.lists(st.sampled_from(_PIECES), max_size=12).map("".join))
)
def test_idna_host_mapping_never_raises_and_is_idempotent(host):
    once = idna_map_host(host)
    assert idna_map_host(once) == once
    classify_host(host)


@settings(max_examples=400, deadline=None)
@given(
    st.one_of(st.text(max_size=80), _urlish),
    st.one_of(st.none(), st.text(max_size=30)),
    st.one_of(st.none(), st.dictionaries(st.text(max_size=10), st.text(max_size=30), max_size=3)),
    st.one_of(st.none(), st.text(max_size=60)),
)
def test_classification_raises_only_typed_errors(url, host, headers, body):
    try:
        classify_request(url, host, headers, body)
    except ImdshuntError:
        pass


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc inet_aton semantics")
@settings(max_examples=600, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("0123456789xXaAfF.")), min_size=1, max_size=20))
def test_ipv4_parsing_agrees_with_inet_aton(text):
    try:
        expected = socket.inet_aton(text)
    except OSError:
        expected = None
    ours = parse_ipv4(text)
    got = ours[0].packed if ours is not None and not ours[2] else None
    assert got == expected


def test_normalize_url_rewrites_urls_embedded_in_a_url_path():
    got = normalize_url("https://shop.example.com/fetch?img=http://0xa9fea9fe/latest")
    assert got == "https://shop.example.com/fetch?img=http://169.254.169.254/latest"


@settings(max_examples=600, deadline=None)
@given(st.one_of(st.text(max_size=80), _urlish))
def test_the_fast_prefilter_never_changes_the_answer(text):
    from imdshunt.ssrf.normalize import find_targets

    assert find_targets(text, fast=True) == find_targets(text, fast=False)


@pytest.mark.parametrize(
    ("where", "endpoint", "value", "source"), ATTACKS, ids=[r[2][:60] for r in ATTACKS]
)
def test_the_fast_prefilter_lets_every_attack_through(where, endpoint, value, source):
    from imdshunt.ssrf.normalize import _might_match

    assert _might_match(value)


@settings(max_examples=600, deadline=None)
@given(
    st.sampled_from(["http://", "https://"]),
    st.sampled_from(
        ["www.example.com", "169.254.169.254", "0xa9fea9fe:80", "a9fea9fe.nip.io", "10.0.0.1"]
    ),
    st.one_of(st.text(max_size=40), _urlish),
)
def test_the_absolute_url_fast_path_agrees_with_the_full_scan(scheme, authority, rest):
    import imdshunt.ssrf.normalize as n

    url = f"{scheme}{authority}/{rest}"
    fast = classify_request(url)
    original = n._might_match
    try:
        n._might_match = lambda text: True
        slow = classify_request(url)
    finally:
        n._might_match = original
    assert fast == slow
