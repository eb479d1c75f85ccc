"""Standard Webhooks signatures, checked with the spec's reference Python library
(``standardwebhooks``), rotation included."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

import orjson
import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from gateway.webhooks import signing


def test_a_signature_verifies_with_the_reference_library() -> None:
    text, key = signing.new_secret()
    assert text.startswith("whsec_")
    assert signing.secret_key(text) == key
    assert len(key) == 32
    message_id = signing.new_message_id()
    assert message_id.startswith("msg_")
    assert "." not in message_id
    body = signing.payload("job.succeeded", {"id": "job_1", "status": "succeeded"}, time.time())
    headers = signing.headers([key], message_id, int(time.time()), body)
    assert headers["webhook-id"] == message_id
    assert headers["webhook-signature"].startswith("v1,")
    assert Webhook(text).verify(body, headers) == orjson.loads(body)


def test_the_payload_has_type_timestamp_and_data() -> None:
    body = orjson.loads(signing.payload("job.failed", {"id": "j"}, 1_700_000_000.5))
    assert body == {
        "type": "job.failed",
        "timestamp": "2023-11-14T22:13:20.500000Z",
        "data": {"id": "j"},
    }


def test_during_a_rotation_both_secrets_verify_and_a_third_does_not() -> None:
    new_text, new_key = signing.new_secret()
    old_text, old_key = signing.new_secret()
    other_text, _ = signing.new_secret()
    body = signing.payload("job.succeeded", {"id": "j"}, time.time())
    headers = signing.headers([new_key, old_key], "msg_x", int(time.time()), body)
    assert len(headers["webhook-signature"].split(" ")) == 2
    for text in (new_text, old_text):
        Webhook(text).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(other_text).verify(body, headers)


def test_a_changed_body_or_id_does_not_verify() -> None:
    text, key = signing.new_secret()
    body = signing.payload("job.succeeded", {"id": "j"}, time.time())
    headers = signing.headers([key], "msg_a", int(time.time()), body)
    with pytest.raises(WebhookVerificationError):
        Webhook(text).verify(body.replace("j", "k"), headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(text).verify(body, {**headers, "webhook-id": "msg_b"})


def test_the_signature_is_hmac_sha256_of_id_timestamp_and_body() -> None:
    key = b"k" * 32
    got = signing.signature(key, "msg_1", 1674087231, '{"a":1}')
    digest = hmac.new(key, b'msg_1.1674087231.{"a":1}', hashlib.sha256).digest()
    assert got == "v1," + base64.b64encode(digest).decode()


def test_a_secret_without_its_prefix_is_refused() -> None:
    with pytest.raises(ValueError, match="whsec_"):
        signing.secret_key("abc")
