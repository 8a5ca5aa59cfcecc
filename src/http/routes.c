/*
 * routes.c — every route the server answers, in one table. The OpenAPI document and the
 * authorization test are checked against this table, so a route added here without
 * documentation or a permission rule fails the tests.
 */
#include "handlers/handlers.h"
#include "http/router.h"

const struct route routes[] = {
    {"GET", "/healthz", handle_healthz, ROUTE_PUBLIC | ROUTE_UNLIMITED},
    {"GET", "/readyz", handle_readyz, ROUTE_PUBLIC | ROUTE_UNLIMITED},
    {"GET", "/v1", handle_v1_info, ROUTE_PUBLIC},
    {"GET", "/openapi.json", handle_openapi_json, ROUTE_PUBLIC},
    {"GET", "/docs", handle_docs, ROUTE_PUBLIC},
    {"POST", "/v1/auth/register", handle_auth_register, ROUTE_PUBLIC | ROUTE_AUTH_LIMIT},
    {"POST", "/v1/auth/login", handle_auth_login, ROUTE_PUBLIC | ROUTE_AUTH_LIMIT},
    {"POST", "/v1/auth/refresh", handle_auth_refresh, ROUTE_PUBLIC | ROUTE_AUTH_LIMIT},
    {"POST", "/v1/auth/logout", handle_auth_logout, ROUTE_PUBLIC},
    {"GET", "/v1/users/me", handle_users_me_get, 0},
    {"PATCH", "/v1/users/me", handle_users_me_patch, ROUTE_SENSITIVE},
    {"PUT", "/v1/users/me/password", handle_users_me_password, ROUTE_SENSITIVE},
    {"GET", "/v1/users", handle_users_search, 0},
    {"POST", "/v1/projects", handle_projects_create, ROUTE_IDEMPOTENT},
    {"GET", "/v1/projects", handle_projects_list, 0},
    {"GET", "/v1/projects/{id}", handle_projects_get, 0},
    {"PATCH", "/v1/projects/{id}", handle_projects_patch, 0},
    {"DELETE", "/v1/projects/{id}", handle_projects_delete, 0},
    {"GET", "/v1/projects/{id}/members", handle_members_list, 0},
    {"POST", "/v1/projects/{id}/members", handle_members_add, ROUTE_IDEMPOTENT | ROUTE_SENSITIVE},
    {"GET", "/v1/projects/{id}/members/{user_id}", handle_members_get, 0},
    {"PATCH", "/v1/projects/{id}/members/{user_id}", handle_members_patch, 0},
    {"DELETE", "/v1/projects/{id}/members/{user_id}", handle_members_delete, 0},
    {"GET", "/v1/projects/{id}/events", handle_events_list, 0},
    {"GET", "/v1/projects/{id}/events/stream", handle_events_stream, ROUTE_TICKET},
    {"GET", "/v1/realtime", handle_realtime, ROUTE_PUBLIC},
    {"POST", "/v1/realtime/tickets", handle_realtime_tickets, 0},
    {"GET", "/v1/projects/{id}/tasks", handle_tasks_list_project, 0},
    {"POST", "/v1/projects/{id}/tasks", handle_tasks_create, ROUTE_IDEMPOTENT},
    {"GET", "/v1/tasks", handle_tasks_list_all, 0},
    {"GET", "/v1/tasks/{id}", handle_tasks_get, 0},
    {"PATCH", "/v1/tasks/{id}", handle_tasks_patch, 0},
    {"DELETE", "/v1/tasks/{id}", handle_tasks_delete, 0},
};

const size_t routes_count = sizeof(routes) / sizeof(routes[0]);
