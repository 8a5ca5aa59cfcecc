"""HTTP resource bounds (issue 14): what one client can make the server hold or produce.

- A validation answer names at most 50 fields and says `truncated`: a 1 MiB body of unknown
  fields made a 10 MB problem answer, stored again under an Idempotency-Key.
- Per-IP rate limits key an IPv6 client on its /64 (and an IPv4-mapped address as IPv4).
"""
import json

from harness import assert_problem
from taskkit import register


def test_a_body_of_many_unknown_fields_gets_a_small_truncated_answer(server):
    api = server.api()
    owner = register(api, "vera")
    body = {"name": "p"}
    body.update({f"unknown_field_{i:06d}": i for i in range(32000)})  # about 1 MiB
    raw = json.dumps(body)
    assert 900_000 < len(raw) < 1_048_576
    r = owner.api.post("/v1/projects", data=raw,
                       headers={"Content-Type": "application/json", "Idempotency-Key": "k1"})
    p = assert_problem(r, 422, "validation_failed")
    assert len(r.content) < 16_384, len(r.content)
    assert len(p["errors"]) == 50 and p["truncated"] is True
    assert p["detail"] == "32000 fields are invalid"
    assert p["errors"][0]["field"] == "unknown_field_000000"
    # A field name of 100 KiB is not echoed whole either.
    r = owner.api.post("/v1/projects", json={"name": "p", "x" * 100_000: 1})
    p = assert_problem(r, 422, "validation_failed")
    assert len(r.content) < 4096 and "truncated" not in p
    assert p["errors"][0]["field"].endswith("...")
    assert server.store.query("SELECT count(*) AS n FROM projects")[0]["n"] == 0


def test_rate_limits_key_ipv6_clients_on_their_slash_64(tandem_server):
    srv = tandem_server(env={"TANDEM_RATE_LIMIT": "on", "TANDEM_TRUSTED_PROXIES": "127.0.0.1",
                             "TANDEM_RATE_LIMIT_ANON": "1/h,burst=3"})
    api = srv.api()

    def get(client):
        return api.get("/v1", headers={"X-Forwarded-For": client})

    # Three addresses of one /64 spend one budget of three; the fourth is refused.
    for client in ("2001:db8:1:2::1", "2001:db8:1:2::2", "2001:db8:1:2:ffff::3"):
        assert get(client).status_code == 200
    assert_problem(get("2001:db8:1:2::4"), 429, "rate_limited")
    # The next /64 is another client.
    assert get("2001:db8:1:3::1").status_code == 200
    # An IPv4-mapped IPv6 address is the IPv4 client.
    for client in ("198.51.100.7", "::ffff:198.51.100.7", "198.51.100.7"):
        assert get(client).status_code == 200
    assert_problem(get("::ffff:198.51.100.7"), 429, "rate_limited")
