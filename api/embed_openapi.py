#!/usr/bin/env python3
"""Embed the API document and its rendered reference into a C source at build time.

usage: embed_openapi.py OUTPUT.c DEPFILE OPENAPI.yaml REDOC_BUNDLE.js

OUTPUT.c defines what src/handlers/docs_data.h declares: the OpenAPI document as JSON (for
GET /openapi.json) and a self-contained HTML page (for GET /docs) with Redoc's standalone
bundle and the document inlined, so that the page renders with no network at all. Each comes
with a strong ETag computed from its bytes. DEPFILE tells ninja that the output also depends on
the Redoc bundle, so a new `npm ci` rebuilds it (and a missing bundle reruns this script,
which then says what to do, instead of ninja's bare "missing file").

Redoc is an npm package pinned in package.json/package-lock.json; it is installed by
`npm ci`, never copied into the repository.
"""
import hashlib
import html
import json
import os
import sys

REDOC_OPTIONS = {
    # Everything the page needs is inline: no fonts, logos or scripts from anywhere else.
    "theme": {
        "typography": {
            "fontFamily": "system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', "
                          "Arial, sans-serif",
            "headings": {"fontFamily": "system-ui, -apple-system, 'Segoe UI', Roboto, "
                                       "'Helvetica Neue', Arial, sans-serif"},
            "code": {"fontFamily": "ui-monospace, 'DejaVu Sans Mono', Menlo, Consolas, "
                                   "monospace"},
        },
    },
    "hideDownloadButton": False,
    "downloadFileName": "tandem-openapi.json",
    "expandResponses": "200,201",
    "jsonSampleExpandLevel": 3,
    "sortPropsAlphabetically": False,
    "pathInMiddlePanel": True,
    "requiredPropsFirst": True,
}

# The page may not load anything from the network; scripts and styles are inline, Redoc's
# search runs in a worker made from a blob: URL.
CSP = ("default-src 'none'; script-src 'unsafe-inline' blob:; worker-src blob:; "
       "style-src 'unsafe-inline'; img-src data: blob:; font-src data:; connect-src 'self'; "
       "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")

NPM_HINT = ("run `npm ci` in the repository root (scripts/deps does it) to install the pinned "
            "npm packages of package-lock.json, then build again")


def fail(msg):
    sys.exit(f"embed_openapi: {msg}")


def load_yaml(path):
    try:
        import yaml
    except ImportError:
        fail("Python's yaml module is missing: install the Debian package python3-yaml")

    # YAML 1.1 would read `on`/`yes` as booleans and dates as datetime objects; the document
    # must be plain JSON data, so anything JSON cannot say is an error here.
    class Loader(yaml.SafeLoader):
        pass

    def no_timestamps(loader, node):
        return loader.construct_scalar(node)

    Loader.add_constructor("tag:yaml.org,2002:timestamp", no_timestamps)
    with open(path, encoding="utf-8") as fh:
        doc = yaml.load(fh, Loader=Loader)
    if not isinstance(doc, dict) or not str(doc.get("openapi", "")).startswith("3.1."):
        fail(f"{path} is not an OpenAPI 3.1 document")
    return doc


def script_safe(js, what):
    """Fail unless `js` can sit inside <script>...</script> as it is.

    An HTML parser ends a script at `</script`, and after `<!--` followed by `<script` it
    stops honouring `</script>` until `-->` (the "double escaped" states of the HTML
    tokenizer). Follow those states over the text: the script must neither end early nor
    finish in a state where our closing tag would not close it.
    """
    low = js.lower()

    def tag_at(i, name):
        j = i + len(name)
        return low.startswith(name, i) and (j == len(low) or low[j] in " \t\n\f\r/>")

    state, i, n = "data", 0, len(low)
    while i < n:
        if state == "data":
            if low.startswith("<!--", i):
                state, i = "escaped", i + 4
                continue
            if tag_at(i, "</script"):
                fail(f"{what} contains </script at offset {i}: cannot be inlined")
        elif state == "escaped":
            if low.startswith("-->", i):
                state, i = "data", i + 3
                continue
            if tag_at(i, "</script"):
                fail(f"{what} contains </script at offset {i}: cannot be inlined")
            if tag_at(i, "<script"):
                state = "double"
        else:  # double escaped
            if low.startswith("-->", i):
                state, i = "data", i + 3
                continue
            if tag_at(i, "</script"):
                state = "escaped"
        i += 1
    if state == "double":
        fail(f"{what} leaves the HTML parser in script-double-escaped state: cannot be inlined")
    return js


def html_page(doc, spec_json, redoc_js):
    title = html.escape(doc.get("info", {}).get("title", "API") + " reference")
    # In a JSON <script> block, "<" as \u003c keeps the parser out of every special state.
    spec_inline = spec_json.replace("<", "\\u003c")
    options = json.dumps(REDOC_OPTIONS, separators=(",", ":"))
    boot = (
        "(function(){var spec=JSON.parse(document.getElementById('openapi').textContent);"
        f"Redoc.init(spec,{options},document.getElementById('redoc'));}})();"
    )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{title}</title>\n"
        "<style>body{margin:0;padding:0}</style>\n"
        "</head>\n<body>\n"
        '<noscript>This reference needs JavaScript. The raw document is at '
        '<a href="/openapi.json">/openapi.json</a>.</noscript>\n'
        '<div id="redoc"></div>\n'
        f'<script id="openapi" type="application/json">{spec_inline}</script>\n'
        f"<script>\n{script_safe(redoc_js, 'the Redoc bundle')}\n</script>\n"
        f"<script>{boot}</script>\n"
        "</body>\n</html>\n"
    )


def c_literal(data):
    """A C string literal of the bytes, split over lines; 3-digit octal escapes for anything
    that is not plain printable ASCII (and for '?', so that no trigraph can form)."""
    out, line = [], []
    width = 0
    for b in data:
        if b == 0x22:
            piece = '\\"'
        elif b == 0x5C:
            piece = "\\\\"
        elif b == 0x3F:
            piece = "\\?"
        elif 0x20 <= b < 0x7F:
            piece = chr(b)
        elif b == 0x0A:
            piece = "\\n"
        else:
            piece = "\\%03o" % b
        line.append(piece)
        width += len(piece)
        if width >= 96 or b == 0x0A:
            out.append('"' + "".join(line) + '"')
            line, width = [], 0
    if line:
        out.append('"' + "".join(line) + '"')
    return "\n\t".join(out) if out else '""'


def etag(data):
    return '"' + hashlib.sha256(data).hexdigest()[:32] + '"'


def main():
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    out, depfile, spec_path, bundle = sys.argv[1:5]
    with open(depfile, "w", encoding="utf-8") as fh:
        fh.write(f"{out.replace(' ', chr(92) + ' ')}: "
                 f"{os.path.abspath(bundle).replace(' ', chr(92) + ' ')}\n")
    if not os.path.isfile(bundle):
        fail(f"the Redoc bundle {bundle} is missing (GET /docs embeds it): {NPM_HINT}")
    doc = load_yaml(spec_path)
    spec = json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    with open(bundle, encoding="utf-8") as fh:
        redoc_js = fh.read()
    page = html_page(doc, spec.decode("utf-8"), redoc_js).encode("utf-8")

    parts = ["/* generated by api/embed_openapi.py from api/openapi.yaml — do not edit */\n",
             '#include "handlers/docs_data.h"\n\n']
    for name, data in (("openapi_json", spec), ("docs_html", page)):
        parts.append(f"const char {name}[] =\n\t{c_literal(data)};\n")
        parts.append(f"const size_t {name}_len = {len(data)};\n")
        parts.append(f"const char {name}_etag[] = {c_literal(etag(data).encode())};\n\n")
    parts.append(f"const char docs_csp[] = {c_literal(CSP.encode())};\n")
    tmp = out + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write("".join(parts))
    os.replace(tmp, out)


if __name__ == "__main__":
    main()
