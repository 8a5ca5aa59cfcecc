/*
 * handlers.h — every HTTP handler, one resource per .c file. A handler parses, authorises,
 * calls a service or the store, and replies; it returns 0 after replying or a negative
 * error kind (with detail in req->err) for the server to answer.
 */
#ifndef TANDEM_HANDLERS_HANDLERS_H
#define TANDEM_HANDLERS_HANDLERS_H

struct request;

/* health.c */
int handle_healthz(struct request *req);
int handle_readyz(struct request *req);
int handle_v1_info(struct request *req);

/* docs.c: the embedded OpenAPI document and its rendered reference */
int handle_openapi_json(struct request *req);
int handle_docs(struct request *req);

/* auth.c */
int handlers_authenticate(struct request *req);
int handle_auth_register(struct request *req);
int handle_auth_login(struct request *req);
int handle_auth_refresh(struct request *req);
int handle_auth_logout(struct request *req);

/* users.c */
int handle_users_me_get(struct request *req);
int handle_users_me_patch(struct request *req);
int handle_users_me_password(struct request *req);
int handle_users_search(struct request *req);

/* idempotency.c: run a POST handler under its Idempotency-Key header */
int handlers_idempotent(struct request *req, int (*handler)(struct request *));

/* projects.c */
int handle_projects_create(struct request *req);
int handle_projects_list(struct request *req);
int handle_projects_get(struct request *req);
int handle_projects_patch(struct request *req);
int handle_projects_delete(struct request *req);

/* members.c */
int handle_members_list(struct request *req);
int handle_members_get(struct request *req);
int handle_members_add(struct request *req);
int handle_members_patch(struct request *req);
int handle_members_delete(struct request *req);

/* realtime.c: the event feed (with long poll), SSE and the WebSocket upgrade */
int handle_events_list(struct request *req);
int handle_realtime(struct request *req);
int handle_events_stream(struct request *req);
int handle_realtime_tickets(struct request *req);

/* tasks.c */
int handle_tasks_create(struct request *req);
int handle_tasks_list_project(struct request *req);
int handle_tasks_list_all(struct request *req);
int handle_tasks_get(struct request *req);
int handle_tasks_patch(struct request *req);
int handle_tasks_delete(struct request *req);

#endif
