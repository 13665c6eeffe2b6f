#!/usr/bin/env python3
"""Generates the inbound-verification fixtures of steward-core's integration catalog.

    python3 scripts/gen-integration-fixtures.py

writes crates/steward-core/tests/fixtures/integrations/<app>_<case>.json, which
crates/steward-core/tests/integration_catalog.rs reads. The signatures are computed here,
independently of the Rust code, from each vendor's documentation:

  Slack     X-Slack-Signature: v0=hex(HMAC-SHA256(secret, "v0:" + timestamp + ":" + body))
  GitHub    X-Hub-Signature-256: sha256=hex(HMAC-SHA256(secret, body))
  Linear    Linear-Signature: hex(HMAC-SHA256(secret, body)); body.webhookTimestamp in ms
  Discord   X-Signature-Ed25519: hex(Ed25519 signature of timestamp + body)
  Telegram  X-Telegram-Bot-Api-Secret-Token: secret
  Google    X-Goog-Channel-Token: secret

HMACs use Python's standard library (hmac, hashlib). Ed25519 uses the `openssl` command-line
tool (OpenSSL 3: `openssl pkeyutl -sign -rawin`), with the private key of RFC 8032's first test
vector so the output is the same on every run (Ed25519 signatures are deterministic). Where a
vendor publishes a worked example (GitHub's and Slack's docs, RFC 8032), the script checks that
it reproduces the published value before writing anything.

Each fixture is {app, case, secret, headers, body, now_ms, expect}: `body` is the exact raw
body, `expect` is "ok" or a substring of the error verify_inbound must return.
"""

import hashlib
import hmac
import json
import os
import subprocess
import sys
import tempfile

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "crates", "steward-core", "tests", "fixtures", "integrations")
NOW_MS = 1_764_000_000_000  # 2025-11-24T16:00:00Z
NOW_S = NOW_MS // 1000
MISMATCH = "the signature does not match"

fixtures = []


def add(app, case, secret, headers, body, expect, now_ms=NOW_MS):
    fixtures.append({"app": app, "case": case, "secret": secret, "headers": headers, "body": body, "now_ms": now_ms, "expect": expect})


def hmac_hex(secret, message):
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


def flip_hex(h, at=10):
    """The same hex string with one byte (two digits at an even offset) changed."""
    byte = int(h[at:at + 2], 16) ^ 0x01
    return h[:at] + f"{byte:02x}" + h[at + 2:]


def tamper(body):
    """The body with one character changed, the way a proxy re-encoding it might."""
    i = body.index("a")
    return body[:i] + "b" + body[i + 1:]


# --- Slack -------------------------------------------------------------------------------------

def slack():
    # The worked example of Slack's "Verifying requests from Slack" page.
    doc_secret = "8f742231b10e8888abcd99yyyzzz85a5"
    doc_ts = "1531420618"
    doc_body = ("token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V"
                "&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text="
                "&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN"
                "&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c")
    doc_sig = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
    assert "v0=" + hmac_hex(doc_secret, f"v0:{doc_ts}:{doc_body}") == doc_sig, "Slack's documented example does not reproduce"
    add("slack", "documented_example", doc_secret, {"X-Slack-Signature": doc_sig, "X-Slack-Request-Timestamp": doc_ts}, doc_body, "ok",
        now_ms=int(doc_ts) * 1000 + 30_000)

    secret = "e5f3b1c2d4a6978812ab34cd56ef7890"
    body = json.dumps({
        "token": "ZZZZZZWSxiZZZ2yIvs3peJ", "team_id": "T0001AAAA", "api_app_id": "A0001BBBB",
        "event": {"type": "app_mention", "user": "U0061CCCC", "text": "<@U0LAN0Z89> can you summarise this thread?",
                  "ts": "1764000000.000200", "channel": "C0LAN2Q65", "event_ts": "1764000000.000200"},
        "type": "event_callback", "event_id": "Ev0LAN670R", "event_time": 1764000000,
    }, separators=(",", ":"))

    def signed(ts, b=body):
        return {"X-Slack-Request-Timestamp": str(ts), "X-Slack-Signature": "v0=" + hmac_hex(secret, f"v0:{ts}:{b}")}

    add("slack", "valid", secret, signed(NOW_S - 5), body, "ok")
    h = signed(NOW_S - 5)
    h["X-Slack-Signature"] = "v0=" + flip_hex(h["X-Slack-Signature"][3:])
    add("slack", "forged_signature", secret, h, body, MISMATCH)
    add("slack", "tampered_body", secret, signed(NOW_S - 5), tamper(body), MISMATCH)
    add("slack", "wrong_secret", secret + "x", signed(NOW_S - 5), body, MISMATCH)
    # Signed correctly, but the timestamp is outside the 300 s window: a replay.
    add("slack", "stale_timestamp", secret, signed(NOW_S - 412), body, "the X-Slack-Request-Timestamp is 412 s old; the window is 300 s")
    add("slack", "future_timestamp", secret, signed(NOW_S + 400), body, "is 400 s in the future")
    add("slack", "edge_of_window", secret, signed(NOW_S - 300), body, "ok")
    # The timestamp is part of what is signed: moving it invalidates the signature.
    h = signed(NOW_S - 5)
    h["X-Slack-Request-Timestamp"] = str(NOW_S - 4)
    add("slack", "timestamp_changed", secret, h, body, MISMATCH)
    h = signed(NOW_S - 5)
    del h["X-Slack-Signature"]
    add("slack", "missing_signature", secret, h, body, "X-Slack-Signature is missing")
    h = signed(NOW_S - 5)
    del h["X-Slack-Request-Timestamp"]
    add("slack", "missing_timestamp", secret, h, body, "X-Slack-Request-Timestamp is missing")
    h = signed(NOW_S - 5)
    h["X-Slack-Signature"] = h["X-Slack-Signature"][3:]
    add("slack", "signature_without_version", secret, h, body, "v0=<hex")


# --- GitHub ------------------------------------------------------------------------------------

def github():
    # The worked example of GitHub's "Validating webhook deliveries" page.
    doc_secret = "It's a Secret to Everybody"
    doc_body = "Hello, World!"
    doc_sig = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    assert "sha256=" + hmac_hex(doc_secret, doc_body) == doc_sig, "GitHub's documented example does not reproduce"
    add("github", "documented_example", doc_secret, {"X-Hub-Signature-256": doc_sig}, doc_body, "ok")

    secret = "gh-webhook-secret-3f9a1c"
    body = json.dumps({
        "action": "opened",
        "issue": {"number": 1347, "title": "Found a bug", "body": "The export button does nothing on Safari.",
                  "html_url": "https://github.com/octocat/Hello-World/issues/1347", "user": {"login": "octocat"}},
        "repository": {"full_name": "octocat/Hello-World"}, "sender": {"login": "octocat"},
    }, indent=2)

    def signed(b=body):
        # Lower-case names, as they arrive over HTTP/2: lookups must not depend on case.
        return {"x-github-event": "issues", "x-github-delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958",
                "x-hub-signature-256": "sha256=" + hmac_hex(secret, b)}

    add("github", "valid", secret, signed(), body, "ok")
    h = signed()
    h["x-hub-signature-256"] = "sha256=" + flip_hex(h["x-hub-signature-256"][7:], at=40)
    add("github", "forged_signature", secret, h, body, MISMATCH)
    add("github", "tampered_body", secret, signed(), tamper(body), MISMATCH)
    h = signed()
    h["x-hub-signature-256"] = h["x-hub-signature-256"][:-2]
    add("github", "truncated_signature", secret, h, body, MISMATCH)
    h = signed()
    del h["x-hub-signature-256"]
    h["x-hub-signature"] = "sha1=" + hmac.new(secret.encode(), body.encode(), hashlib.sha1).hexdigest()
    add("github", "missing_header", secret, h, body, "X-Hub-Signature-256 is missing")
    h = signed()
    h["x-hub-signature-256"] = "sha1=" + h["x-hub-signature-256"][7:]
    add("github", "wrong_prefix", secret, h, body, "sha256=<hex")


# --- Linear ------------------------------------------------------------------------------------

def linear():
    secret = "lin_wh_5d7c1e9b2a4f6081"

    def body(ts_ms, title="Login fails on Safari"):
        return json.dumps({
            "action": "create", "type": "Issue", "createdAt": "2025-11-24T16:00:00.000Z",
            "url": "https://linear.app/acme/issue/ENG-123/login-fails-on-safari",
            "data": {"id": "9cfb482a-81e3-4154-b5b9-2c805e70a02d", "identifier": "ENG-123", "title": title},
            "webhookId": "5f0c8e9a-1b2c-4d3e-8f4a-6b7c8d9e0f1a", "webhookTimestamp": ts_ms,
        }, separators=(",", ":"))

    def signed(b):
        return {"Linear-Delivery": "234d1a4e-b617-4388-90fe-adc3633d6b72", "Linear-Event": "Issue", "Linear-Signature": hmac_hex(secret, b)}

    fresh = body(NOW_MS - 2_000)
    add("linear", "valid", secret, signed(fresh), fresh, "ok")
    h = signed(fresh)
    h["Linear-Signature"] = flip_hex(h["Linear-Signature"], at=0)
    add("linear", "forged_signature", secret, h, fresh, MISMATCH)
    add("linear", "tampered_body", secret, signed(fresh), body(NOW_MS - 2_000, "Login fails on Safarj"), MISMATCH)
    # Correctly signed, but sent 412 s ago: a replay.
    stale = body(NOW_MS - 412_000)
    add("linear", "stale_timestamp", secret, signed(stale), stale, "webhookTimestamp is 412 s old; the window is 60 s")
    # A replayed body with its timestamp moved forward no longer matches its signature.
    add("linear", "replay_with_new_timestamp", secret, signed(stale), fresh, MISMATCH)
    h = signed(fresh)
    del h["Linear-Signature"]
    add("linear", "missing_header", secret, h, fresh, "Linear-Signature is missing")
    no_ts = json.dumps({"action": "create", "type": "Issue", "data": {"id": "x"}}, separators=(",", ":"))
    add("linear", "missing_webhook_timestamp", secret, signed(no_ts), no_ts, "webhookTimestamp")


# --- Discord -----------------------------------------------------------------------------------

# RFC 8032 section 7.1: TEST 1's key signs the fixtures; TEST 2 (message 0x72) checks openssl.
RFC8032_TEST1 = ("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
                 "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
RFC8032_TEST2 = ("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
                 "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c")
RFC8032_TEST2_SIG = ("92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da"
                     "085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00")


class Ed25519:
    def __init__(self, workdir, seed_hex, public_hex):
        self.dir = workdir
        self.key = os.path.join(workdir, f"key-{public_hex[:8]}.der")
        # PKCS#8 DER of an Ed25519 private key: a fixed prefix, then the 32-byte seed.
        with open(self.key, "wb") as f:
            f.write(bytes.fromhex("302e020100300506032b657004220420" + seed_hex))
        pub = subprocess.run(["openssl", "pkey", "-inform", "DER", "-in", self.key, "-pubout", "-outform", "DER"],
                             check=True, capture_output=True).stdout
        self.public_hex = pub[-32:].hex()
        assert self.public_hex == public_hex, "openssl derived another public key than RFC 8032's"

    def sign(self, message: bytes) -> str:
        msg = os.path.join(self.dir, "msg.bin")
        with open(msg, "wb") as f:
            f.write(message)
        sig = subprocess.run(["openssl", "pkeyutl", "-sign", "-inkey", self.key, "-keyform", "DER", "-rawin", "-in", msg],
                             check=True, capture_output=True).stdout
        assert len(sig) == 64
        return sig.hex()


def discord(ed):
    public = ed.public_hex
    ts = str(NOW_S - 1)
    body = json.dumps({
        "id": "1234567890123456789", "application_id": "987654321098765432", "type": 2,
        "token": "aW50ZXJhY3Rpb246MTIzNDU2Nzg5MDEyMzQ1Njc4OQ", "version": 1, "channel_id": "645027906669510667",
        "data": {"id": "771825006014889984", "name": "ask", "type": 1},
    }, separators=(",", ":"))

    def signed(b=body, t=ts):
        return {"X-Signature-Ed25519": ed.sign((t + b).encode()), "X-Signature-Timestamp": t}

    add("discord", "valid", public, signed(), body, "ok")
    ping = '{"type":1}'
    add("discord", "ping", public, signed(ping), ping, "ok")
    h = signed()
    h["X-Signature-Ed25519"] = flip_hex(h["X-Signature-Ed25519"], at=20)
    add("discord", "forged_signature", public, h, body, MISMATCH)
    add("discord", "tampered_body", public, signed(), tamper(body), MISMATCH)
    h = signed()
    h["X-Signature-Timestamp"] = str(NOW_S)
    add("discord", "timestamp_changed", public, h, body, MISMATCH)
    # A different application's key (RFC 8032 TEST 2's public key) does not verify.
    add("discord", "other_public_key", RFC8032_TEST2[1], signed(), body, MISMATCH)
    h = signed()
    del h["X-Signature-Ed25519"]
    add("discord", "missing_signature", public, h, body, "X-Signature-Ed25519 is missing")
    h = signed()
    del h["X-Signature-Timestamp"]
    add("discord", "missing_timestamp", public, h, body, "X-Signature-Timestamp is missing")
    add("discord", "malformed_public_key", "not-a-key", signed(), body, "public key is not 64 hex characters")


# --- Token schemes (Telegram, Google) -----------------------------------------------------------

def tokens():
    cases = [
        ("telegram", "X-Telegram-Bot-Api-Secret-Token", "tg-Secret_token-8a7d2c",
         json.dumps({"update_id": 10000, "message": {"message_id": 1365, "date": NOW_S, "chat": {"id": 1111111, "type": "private"},
                                                      "text": "hello"}}, separators=(",", ":"))),
        ("google", "X-Goog-Channel-Token", "goog-channel-token-1f2e3d4c", ""),
    ]
    for app, header, secret, body in cases:
        add(app, "valid", secret, {header: secret}, body, "ok")
        forged = secret[:-1] + ("0" if secret[-1] != "0" else "1")
        add(app, "forged_token", secret, {header: forged}, body, f"{header} does not match")
        add(app, "token_prefix_only", secret, {header: secret[:-1]}, body, f"{header} does not match")
        add(app, "missing_header", secret, {}, body, f"{header} is missing")


def main():
    if subprocess.run(["openssl", "version"], capture_output=True).returncode != 0:
        sys.exit("this script needs the openssl command-line tool (OpenSSL 3) for Ed25519")
    slack()
    github()
    linear()
    with tempfile.TemporaryDirectory() as d:
        check = Ed25519(d, *RFC8032_TEST2)
        assert check.sign(bytes([0x72])) == RFC8032_TEST2_SIG, "openssl does not reproduce RFC 8032's TEST 2 signature"
        discord(Ed25519(d, *RFC8032_TEST1))
    tokens()

    os.makedirs(OUT, exist_ok=True)
    for name in os.listdir(OUT):
        if name.endswith(".json"):
            os.remove(os.path.join(OUT, name))
    for f in fixtures:
        path = os.path.join(OUT, f"{f['app']}_{f['case']}.json")
        assert not os.path.exists(path), f"two fixtures named {path}"
        with open(path, "w") as out:
            json.dump(f, out, indent=2, sort_keys=True, ensure_ascii=False)
            out.write("\n")
    print(f"wrote {len(fixtures)} fixtures to {os.path.normpath(OUT)}")


if __name__ == "__main__":
    main()
