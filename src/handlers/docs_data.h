/*
 * docs_data.h — the API document and its rendered reference, embedded at build time.
 *
 * api/embed_openapi.py generates the definitions (docs_data.c in the build directory) from
 * api/openapi.yaml and the pinned Redoc bundle in node_modules, so the binary serves them
 * without any file at run time. Everything here is immutable, hence thread-safe.
 */
#ifndef TANDEM_HANDLERS_DOCS_DATA_H
#define TANDEM_HANDLERS_DOCS_DATA_H

#include <stddef.h>

/* The OpenAPI 3.1 document as compact JSON (UTF-8), its length and its strong ETag. */
extern const char openapi_json[];
extern const size_t openapi_json_len;
extern const char openapi_json_etag[];

/* The self-contained HTML reference page (Redoc and the document inlined). */
extern const char docs_html[];
extern const size_t docs_html_len;
extern const char docs_html_etag[];

/* The Content-Security-Policy the page is served with: it may load nothing from anywhere. */
extern const char docs_csp[];

#endif
