"""HTTP resource bounds (issue 14): what one client can make the server hold or produce.

- A validation answer names at most 50 fields and says `truncated`: a 1 MiB body of unknown
  fields made a 10 MB problem answer, stored again under an Idempotency-Key.
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
