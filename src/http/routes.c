/*
 * routes.c — every route the server answers, in one table. The OpenAPI document and the
 * authorization test are checked against this table, so a route added here without
 * documentation or a permission rule fails the tests.
 */
#include "handlers/handlers.h"
#include "http/router.h"

static const struct route_param q_users[] = {{"q", 0}, {NULL, 0}};
static const struct route_param q_projects[] = {{"q", 0}, {"limit", 0}, {"cursor", 0}, {NULL, 0}};
static const struct route_param q_members[] = {{"limit", 0}, {"cursor", 0}, {NULL, 0}};
static const struct route_param q_events[] = {{"after", 0}, {"limit", 0}, {"wait", 0}, {NULL, 0}};
static const struct route_param q_stream[] = {{"after", 0}, {"ticket", 0}, {NULL, 0}};
static const struct route_param q_realtime[] = {{"ticket", 0}, {NULL, 0}};
/* The task filters, on one project's tasks and (with project_id) across projects. */
static const struct route_param q_tasks_project[] = {{"status", PARAM_LIST},
						     {"priority", PARAM_LIST},
						     {"assignee_id", 0},
						     {"due_before", 0},
						     {"due_after", 0},
						     {"updated_since", 0},
						     {"q", 0},
						     {"sort", PARAM_LIST},
						     {"limit", 0},
						     {"cursor", 0},
						     {NULL, 0}};
static const struct route_param q_tasks_all[] = {{"status", PARAM_LIST},
						 {"priority", PARAM_LIST},
						 {"assignee_id", 0},
						 {"due_before", 0},
						 {"due_after", 0},
						 {"updated_since", 0},
						 {"q", 0},
						 {"sort", PARAM_LIST},
						 {"limit", 0},
						 {"cursor", 0},
						 {"project_id", 0},
						 {NULL, 0}};

/*
 * The query parameters of every route that takes any (struct route_param). A route not named
 * here takes none: any query parameter it is sent is refused.
 */
const struct route_query route_queries[] = {
    {"GET", "/v1/users", q_users},
    {"GET", "/v1/projects", q_projects},
    {"GET", "/v1/projects/{id}/members", q_members},
    {"GET", "/v1/projects/{id}/events", q_events},
    {"GET", "/v1/projects/{id}/events/stream", q_stream},
    {"GET", "/v1/realtime", q_realtime},
    {"GET", "/v1/projects/{id}/tasks", q_tasks_project},
    {"GET", "/v1/tasks", q_tasks_all},
};

const size_t route_queries_count = sizeof(route_queries) / sizeof(route_queries[0]);

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
