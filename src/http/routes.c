/*
 * routes.c — every route the server answers, in one table. The OpenAPI document and the
 * authorization test are checked against this table, so a route added here without
 * documentation or a permission rule fails the tests.
 */
#include "handlers/handlers.h"
#include "http/router.h"

const struct route routes[] = {
    {"GET", "/healthz", handle_healthz, ROUTE_PUBLIC},
    {"GET", "/readyz", handle_readyz, ROUTE_PUBLIC},
    {"GET", "/v1", handle_v1_info, ROUTE_PUBLIC},
};

const size_t routes_count = sizeof(routes) / sizeof(routes[0]);
