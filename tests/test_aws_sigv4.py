"""SigV4 signing (reference/providers.md §6.6): the test vector, the ``%3A`` double-encoding, session
tokens, and agreement with botocore's own signer on random requests."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from urllib.parse import quote

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from hypothesis import given, settings
from hypothesis import strategies as st

from wayport.providers.aws_sigv4 import (
    AwsCredentials,
    canonical_headers,
    canonical_query,
    canonical_request,
    canonical_uri,
    credential_scope,
    host_of,
    sign_headers,
    string_to_sign,
)

# The test vector of §6.6
AKID = "AKIDEXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
URL = (
    "https://bedrock-runtime.us-east-1.amazonaws.com/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse"
)
BODY = b'{"messages":[{"role":"user","content":[{"text":"Hi"}]}],"inferenceConfig":{"maxTokens":16}}'
WHEN = datetime(2024, 1, 1, tzinfo=UTC)
SIGNATURE = "0ae2534eab25c358fef30a901d4e653b1bbb8798f73aad4cbe66da67a1dad577"


def vector_headers(**kwargs: str) -> dict[str, str]:
    return sign_headers(
        "POST",
        URL,
        {"Content-Type": "application/json"},
        BODY,
        AwsCredentials(AKID, SECRET, **kwargs),
        "us-east-1",
        "bedrock",
        WHEN,
    )


def test_reference_vector_signature() -> None:
    headers = vector_headers()

    assert headers["authorization"] == (
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20240101/us-east-1/bedrock/aws4_request, "
        f"SignedHeaders=content-type;host;x-amz-date, Signature={SIGNATURE}"
    )
    assert headers["x-amz-date"] == "20240101T000000Z"
    assert headers["host"] == "bedrock-runtime.us-east-1.amazonaws.com"


def test_reference_vector_intermediate_values() -> None:
    signed = {
        "content-type": "application/json",
        "host": "bedrock-runtime.us-east-1.amazonaws.com",
        "x-amz-date": "20240101T000000Z",
    }
    request = canonical_request("POST", URL, signed, BODY)

    lines = request.split("\n")
    assert lines[1] == "/model/anthropic.claude-3-haiku-20240307-v1%253A0/converse"
    assert lines[-2] == "content-type;host;x-amz-date"
    assert lines[-1] == "9086f5ed72696dae888c64846e3db151bb80e2483eba722648ee71231780c823"
    to_sign = string_to_sign(
        "20240101T000000Z", credential_scope("20240101", "us-east-1", "bedrock"), request
    ).split("\n")
    assert to_sign[3] == "5ae2f3303d42988c04ebd9fa20814cebae99d850984c6531748770800ae06b37"


def test_percent_encoded_colon_is_encoded_again_and_a_raw_colon_once() -> None:
    assert canonical_uri("/model/a-v1%3A0/converse") == "/model/a-v1%253A0/converse"
    assert canonical_uri("/model/a-v1:0/converse") == "/model/a-v1%3A0/converse"
    assert canonical_uri("/model/arn%3Aaws%2Fx/invoke") == "/model/arn%253Aaws%252Fx/invoke"
    assert canonical_uri("") == "/"


def test_session_token_is_sent_and_signed() -> None:
    headers = vector_headers(session_token="token/abc=")

    assert headers["x-amz-security-token"] == "token/abc="
    assert "SignedHeaders=content-type;host;x-amz-date;x-amz-security-token," in headers["authorization"]
    assert SIGNATURE not in headers["authorization"]


def test_the_secret_never_shows_in_repr() -> None:
    credentials = AwsCredentials(AKID, SECRET, "token")
    assert SECRET not in repr(credentials)
    assert SECRET not in str(credentials)
    assert "token" not in repr(credentials)


def test_host_carries_a_port_only_when_not_the_default() -> None:
    assert host_of("https://h.example.com:443/x") == "h.example.com"
    assert host_of("http://127.0.0.1:8080/x") == "127.0.0.1:8080"
    assert host_of("http://[::1]:9000/x") == "[::1]:9000"


def test_canonical_headers_trim_and_collapse_spaces() -> None:
    assert canonical_headers({"X-B": "  two   words ", "a": "1"}) == "a:1\nx-b:two words\n"


def test_canonical_query_sorts_and_encodes() -> None:
    assert canonical_query("b=2&a=x%20y&a=1") == "a=1&a=x%20y&b=2"
    assert canonical_query("") == ""


# -- agreement with botocore ------------------------------------------------------------------

segment = (
    st.text(alphabet=st.characters(codec="ascii", categories=("L", "N", "P", "S")), min_size=1, max_size=12)
    .filter(lambda s: s not in (".", ".."))
    .map(lambda s: quote(s, safe=":@!$&'()*+,;="))
)
header_values = st.text(
    alphabet=st.characters(codec="ascii", categories=("L", "N", "Zs", "P")), min_size=1, max_size=20
).filter(str.strip)


@settings(max_examples=150, deadline=None)
@given(
    segments=st.lists(segment, min_size=1, max_size=4),
    body=st.binary(max_size=200),
    extra=st.dictionaries(st.sampled_from(["x-amz-target", "x-custom", "accept"]), header_values, max_size=2),
    region=st.sampled_from(["us-east-1", "eu-west-3", "ap-southeast-2"]),
    token=st.none() | st.text(alphabet="abcXYZ019/+=", min_size=1, max_size=30),
    port=st.none() | st.integers(1024, 65535),
)
def test_signature_matches_botocore(
    segments: list[str], body: bytes, extra: dict[str, str], region: str, token: str | None, port: int | None
) -> None:
    host = "bedrock-runtime.example.com" + (f":{port}" if port else "")
    url = f"https://{host}/" + "/".join(segments)
    headers = {"content-type": "application/json", **extra}
    ours = sign_headers(
        "POST", url, headers, body, AwsCredentials(AKID, SECRET, token), region, "bedrock", WHEN
    )

    request = AWSRequest(
        method="POST", url=url, headers={k: v for k, v in ours.items() if k != "authorization"}
    )
    request.data = body
    request.context["timestamp"] = "20240101T000000Z"
    signer = SigV4Auth(Credentials(AKID, SECRET, token), "bedrock", region)
    expected = signer.signature(signer.string_to_sign(request, signer.canonical_request(request)), request)
    assert ours["authorization"].endswith(f"Signature={expected}")
    assert hashlib.sha256(body).hexdigest() in canonical_request("POST", url, ours, body)
