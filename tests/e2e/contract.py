"""The API document (api/openapi.yaml) as a test oracle.

conftest.py wraps requests.Session.send with `check_response`, so every response that any e2e
test receives from a server on this machine is checked against the document: the route and
status must be documented, required headers present and well-formed, the content type one of
the documented ones and the body valid against its schema (problem+json for errors). What does
not conform is recorded here and fails the test that received it (see conftest.py), on every
backend the suite runs on.

test_00_contract.py uses the same loader to compare the document with the route table and to
generate the requests that break each documented constraint.

Thread-safe: tests that send requests from several threads record into one locked list.
"""

import json
import re
import threading
import urllib.parse
from pathlib import Path

import jsonschema
import yaml

REPO = Path(__file__).resolve().parents[2]
SPEC_PATH = REPO / "api" / "openapi.yaml"
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}


class _Loader(yaml.SafeLoader):
    """YAML as JSON data: a date stays a string (the server embeds the document the same way)."""


_Loader.add_constructor("tag:yaml.org,2002:timestamp",
                        lambda loader, node: loader.construct_scalar(node))


def load_spec(path=SPEC_PATH):
    with open(path, encoding="utf-8") as fh:
        return yaml.load(fh, Loader=_Loader)


FORMATS = jsonschema.FormatChecker(formats=())
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\d[Tt]\d\d:\d\d:\d\d(\.\d+)?([Zz]|[+-]\d\d:\d\d)$")
UUID = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")


@FORMATS.checks("date-time")
def _date_time(value):
    return not isinstance(value, str) or bool(RFC3339.match(value))


@FORMATS.checks("uuid")
def _uuid(value):
    return not isinstance(value, str) or bool(UUID.match(value))


@FORMATS.checks("email")
def _email(value):
    if not isinstance(value, str):
        return True
    local, _, domain = value.rpartition("@")
    return bool(local) and "." in domain and " " not in value


def _segments(path):
    return path.strip("/").split("/") if path.strip("/") else []


class Contract:
    """The document, indexed for matching requests to operations and validating answers."""

    def __init__(self, spec):
        self.spec = spec
        self.resolver = jsonschema.RefResolver.from_schema(spec)
        self.paths = {}  # template -> {METHOD: operation}
        for template, item in spec.get("paths", {}).items():
            ops = {}
            for m in HTTP_METHODS:
                if m in item:
                    op = dict(item[m])
                    op["parameters"] = list(item.get("parameters", [])) + list(
                        op.get("parameters", []))
                    ops[m.upper()] = op
            self.paths[template] = ops
        self._validators = {}

    # -- the document --------------------------------------------------------------------

    def resolve(self, obj):
        """Follow `$ref` (to components) until a concrete object."""
        seen = 0
        while isinstance(obj, dict) and "$ref" in obj:
            _, obj = self.resolver.resolve(obj["$ref"])
            seen += 1
            assert seen < 32, "reference loop in the API document"
        return obj

    def operations(self):
        """[(METHOD, template, operation)] in document order."""
        return [(m, t, op) for t, ops in self.paths.items() for m, op in ops.items()]

    def validator(self, schema):
        key = json.dumps(schema, sort_keys=True)
        v = self._validators.get(key)
        if v is None:
            v = jsonschema.Draft202012Validator(schema, resolver=self.resolver,
                                                format_checker=FORMATS)
            self._validators[key] = v
        return v

    def errors(self, schema, instance):
        """Validation messages of `instance` against `schema` (empty when valid)."""
        out = []
        for e in sorted(self.validator(schema).iter_errors(instance), key=lambda e: e.path):
            where = "/".join(str(p) for p in e.absolute_path) or "(root)"
            out.append(f"{where}: {e.message[:300]}")
        return out

    def match(self, path):
        """The template that `path` (decoded) falls under, or None. Literal segments win over
        parameters, as a more specific route would."""
        segs = _segments(path)
        best, best_score = None, -1
        for template in self.paths:
            tsegs = _segments(template)
            if len(tsegs) != len(segs):
                continue
            score = 0
            for t, s in zip(tsegs, segs):
                if t.startswith("{") and t.endswith("}"):
                    if not s:
                        break
                elif t == s:
                    score += 1
                else:
                    break
            else:
                if score > best_score:
                    best, best_score = template, score
        return best

    # -- checking one answer -------------------------------------------------------------

    def check_response(self, method, url, status, headers, body, *, body_read=True):
        """Problems of one answer, as strings (empty list: it conforms)."""
        parts = urllib.parse.urlsplit(url)
        path = urllib.parse.unquote(parts.path)
        head = method.upper() == "HEAD"
        method = "GET" if head else method.upper()
        where = f"{method}{' (HEAD)' if head else ''} {parts.path} -> {status}"
        template = self.match(path)
        if template is None or method not in self.paths[template]:
            return [f"{where}: {p}" for p in
                    self._check_unrouted(method, template, status, headers, body, head,
                                        body_read)]
        op = self.paths[template][method]
        responses = op.get("responses", {})
        resp = responses.get(str(status)) or responses.get(f"{str(status)[0]}XX") \
            or responses.get("default")
        if resp is None:
            return [f"{where}: status {status} is not documented for {method} {template} "
                    f"(documented: {', '.join(sorted(responses))})"]
        resp = self.resolve(resp)
        problems = self._check_headers(resp, headers)
        problems += self._check_body(resp, headers, body, head, body_read)
        return [f"{where} ({method} {template}): {p}" for p in problems]

    def _check_unrouted(self, method, template, status, headers, body, head, body_read):
        """A request the document has no operation for: the server's routing answers, which
        the document states in its Conventions (404 for an unknown path, 405 with Allow for
        a known path and another method, 204 with Allow to OPTIONS on a known path, 413
        before routing)."""
        options = method == "OPTIONS" and template is not None
        allowed = (404, 413) if template is None else (204, 413) if options else (405, 413)
        problems = []
        if status not in allowed:
            what = "an unknown path" if template is None else f"a method {template} lacks"
            problems.append(f"{what} must answer {' or '.join(map(str, allowed))}")
        if status in (204, 405):
            allow = {m.strip() for m in headers.get("Allow", "").split(",") if m.strip()}
            want = set(self.paths[template]) | {"OPTIONS"}
            if "GET" in want:
                want.add("HEAD")
            if allow != want:
                problems.append(f"Allow is {sorted(allow)}, the document says {sorted(want)}")
        if status == 204:
            if body_read and body:
                problems.append(f"OPTIONS answered a body of {len(body)} bytes")
        elif not head and body_read:
            problems += self._check_problem_body(status, headers, body)
        return problems

    def _check_problem_body(self, status, headers, body):
        ctype = headers.get("Content-Type", "").split(";")[0].strip().lower()
        if ctype != "application/problem+json":
            return [f"Content-Type is {ctype!r}, not application/problem+json"]
        try:
            doc = json.loads(body)
        except ValueError:
            return ["the body is not JSON"]
        schema = {"allOf": [{"$ref": "#/components/schemas/Problem"},
                            {"properties": {"status": {"const": status}}}]}
        return self.errors(schema, doc)

    def _check_headers(self, resp, headers):
        problems = []
        for name, h in (resp.get("headers") or {}).items():
            h = self.resolve(h)
            value = headers.get(name)
            if value is None:
                if h.get("required"):
                    problems.append(f"required header {name} is missing")
                continue
            schema = h.get("schema")
            if schema:
                problems += [f"header {name}: {value!r}: {e}"
                             for e in self.errors(schema, value)]
        return problems

    def _check_body(self, resp, headers, body, head, body_read):
        content = resp.get("content")
        if not content:
            if body_read and body:
                return [f"the document says no body, got {len(body)} bytes"]
            return []
        ctype = headers.get("Content-Type", "").split(";")[0].strip().lower()
        if ctype not in content:
            return [f"Content-Type {ctype!r} is not documented (documented: {sorted(content)})"]
        if head or not body_read:
            return []
        schema = content[ctype].get("schema")
        if ctype == "application/json" or ctype.endswith("+json"):
            try:
                doc = json.loads(body)
            except ValueError as e:
                return [f"the body is not JSON: {e}"]
            return self.errors(schema, doc) if schema else []
        if schema and schema.get("type") == "string":
            try:
                body.decode("utf-8")
            except UnicodeDecodeError:
                return ["the body is not UTF-8 text"]
        return []


# -- the session-wide checker ------------------------------------------------------------

_contract = None
_lock = threading.Lock()
_violations = []
_checked = [0]


def contract():
    global _contract
    if _contract is None:
        _contract = Contract(load_spec())
    return _contract


def record_response(resp, streamed):
    """Check one requests.Response from a local server; remember what does not conform."""
    req = resp.request
    host = urllib.parse.urlsplit(req.url).hostname or ""
    if host not in LOCAL_HOSTS:
        return
    problems = contract().check_response(
        req.method, req.url, resp.status_code, resp.headers,
        b"" if streamed else resp.content, body_read=not streamed)
    with _lock:
        _checked[0] += 1
        _violations.extend(problems)


def take_violations():
    """The violations recorded since the last call (and forget them)."""
    with _lock:
        out = list(_violations)
        _violations.clear()
    return out


def checked_count():
    with _lock:
        return _checked[0]


def install(session_class):
    """Wrap session_class.send (requests.Session) so that every answer is checked."""
    original = session_class.send
    if getattr(original, "_contract_checked", False):
        return

    def send(self, request, **kwargs):
        resp = original(self, request, **kwargs)
        # Redirects are not followed by the harness; a streamed body is left to the test.
        record_response(resp, streamed=bool(kwargs.get("stream")))
        return resp

    send._contract_checked = True
    session_class.send = send


# -- requests that break documented constraints --------------------------------------------

BAD_CHOICE = "definitely-not-a-choice"
NOT_IN_PATTERN = "\u00e9\u00e9\u00e9"  # "ééé": outside every ASCII pattern of the document
UNKNOWN_FIELD = "not_a_documented_field"


def _types(c, schema):
    """The JSON types `schema` admits (following $ref, anyOf and oneOf)."""
    schema = c.resolve(schema)
    if "type" in schema:
        t = schema["type"]
        return set(t if isinstance(t, list) else [t])
    out = set()
    for key in ("anyOf", "oneOf"):
        for s in schema.get(key, []):
            out |= _types(c, s)
    if "enum" in schema or "const" in schema:
        out.add("string")
    return out


def _first(c, schema, key):
    """`key` of the schema or of a branch it refers to (enum, maxLength, ...)."""
    schema = c.resolve(schema)
    if key in schema:
        return schema[key]
    for k in ("anyOf", "oneOf", "allOf"):
        for s in schema.get(k, []):
            v = _first(c, s, key)
            if v is not None:
                return v
    return None


def _value_candidates(c, schema):
    """(label, bad value) pairs that a value of `schema` could break."""
    out = []
    types = _types(c, schema)
    enum = _first(c, schema, "enum")
    if enum:
        out.append(("enum", BAD_CHOICE))
    max_len = _first(c, schema, "maxLength")
    if max_len is not None:
        out.append(("maxLength", "x" * (max_len + 1)))
    min_len = _first(c, schema, "minLength")
    if min_len:
        out.append(("minLength", "x" * (min_len - 1)))
    if _first(c, schema, "pattern") or _first(c, schema, "format"):
        out.append(("pattern", NOT_IN_PATTERN))
    minimum = _first(c, schema, "minimum")
    if minimum is not None:
        out.append(("minimum", minimum - 1))
    maximum = _first(c, schema, "maximum")
    if maximum is not None:
        out.append(("maximum", maximum + 1))
    if "string" in types and "integer" not in types:
        out.append(("type", 12345))
    elif "integer" in types and "string" not in types:
        out.append(("type", "twelve"))
    if "null" not in types:
        out.append(("null", None))
    return out


def body_cases(c, schema, example):
    """Bodies that each break one documented constraint of a request body schema.

    Yields (label, body, field) where `field` is the one the server must name in errors[] (a
    set when any of several is right). Every body is checked against the document to be
    really invalid, so a case never tests something the document allows.
    """
    schema = c.resolve(schema)
    props = schema.get("properties", {})
    required = schema.get("required", [])
    cases = []
    for name, prop in props.items():
        for label, value in _value_candidates(c, prop):
            cases.append((f"{name} {label}", {**example, name: value}, name))
        if name in required:
            body = dict(example)
            body.pop(name, None)
            cases.append((f"{name} required", body, name))
    if schema.get("additionalProperties") is False:
        cases.append((f"{UNKNOWN_FIELD} additionalProperties",
                      {**example, UNKNOWN_FIELD: "x"}, UNKNOWN_FIELD))
    one_of = [set(s.get("required", [])) for s in schema.get("oneOf", []) if "required" in s]
    if one_of:
        names = set().union(*one_of)
        none = {k: v for k, v in example.items() if k not in names}
        cases.append(("none of oneOf", none, names))
        two = dict(example)
        for n in sorted(names):
            if n not in two:
                two[n] = c.resolve(props.get(n, {})).get("example", "x")
                break
        cases.append(("several of oneOf", two, names))
    out = []
    for label, body, field in cases:
        if c.errors(schema, body):
            out.append((label, body, field))
    return out


def _parse_query(schema, text):
    """A query value as the document's parameter schema reads it (style form)."""
    if text is None:
        return None
    if schema.get("type") == "array":
        return [_parse_query(schema.get("items", {}), t) for t in text.split(",")]
    if schema.get("type") == "integer":
        try:
            return int(text)
        except ValueError:
            return text
    return text


def query_cases(c, param):
    """(label, query text, or None for "absent") that each break one constraint of a query
    parameter. Each text is read back the way the document says the parameter is read and
    checked to be really invalid, like body_cases does."""
    param = c.resolve(param)
    schema = c.resolve(param.get("schema", {}))
    cases = []
    if param.get("required"):
        cases.append(("required", None))
    if schema.get("type") == "array":
        items = c.resolve(schema.get("items", {}))
        for label, value in _value_candidates(c, items):
            if label not in ("type", "null"):  # a query string has no numbers nor null
                cases.append((f"items {label}", str(value)))
        sample = (schema.get("default") or [None])[0]
        if sample is not None and schema.get("uniqueItems"):
            cases.append(("uniqueItems", f"{sample},{sample}"))
        if sample is not None and schema.get("maxItems"):
            cases.append(("maxItems", ",".join([sample] * (schema["maxItems"] + 1))))
    else:
        for label, value in _value_candidates(c, schema):
            if value is not None:
                cases.append((label, str(value)))
    out = []
    for label, text in cases:
        if text is None or c.errors(schema, _parse_query(c.resolve(schema), text)):
            out.append((label, text))
    return out


def header_cases(c, param):
    """(label, header value) that each break a length constraint of a header parameter."""
    schema = c.resolve(c.resolve(param).get("schema", {}))
    out = []
    if schema.get("maxLength") is not None:
        out.append(("maxLength", "k" * (schema["maxLength"] + 1)))
    if schema.get("minLength"):
        out.append(("minLength", "k" * (schema["minLength"] - 1)))
    return [(label, v) for label, v in out if c.errors(schema, v)]
