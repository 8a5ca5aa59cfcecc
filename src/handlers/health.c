/* health.c — service endpoints: liveness, readiness and the API's identity. */
#include "handlers/handlers.h"
#include "http/reply.h"
#include "http/request.h"
#include "http/server.h"
#include "redis/redis.h"
#include "store/store.h"

/* GET /healthz -> 200 {"status":"ok"} while the process serves */
int handle_healthz(struct request *req)
{
	reply_header(req, "Cache-Control", "no-store");
	return reply_json(req, 200, json_pack("{s:s}", "status", "ok"));
}

/* GET /readyz -> 200 when every dependency answers | 503 naming the failing check */
int handle_readyz(struct request *req)
{
	struct error err = ERROR_INIT;
	int rc = store_ping(req->app->store, &err);
	json_t *db = json_pack("{s:s, s:s}", "status", rc == 0 ? "ok" : "failing", "backend",
			       store_backend_name(req->app->store));
	if (rc < 0)
		json_object_set_new(db, "error", json_string("the database does not answer"));
	error_release(&err);
	json_t *checks = json_pack("{s:o}", "database", db);
	if (req->app->redis) {
		int rrc = redis_ping(req->app->redis);
		json_object_set_new(checks, "redis",
				    json_pack("{s:s}", "status", rrc == 0 ? "ok" : "failing"));
		if (rrc < 0)
			rc = -1;
	}
	reply_header(req, "Cache-Control", "no-store");
	return reply_json(
	    req, rc == 0 ? 200 : 503,
	    json_pack("{s:s, s:o}", "status", rc == 0 ? "ok" : "unavailable", "checks", checks));
}

/* GET /v1 -> 200 {name, version, api_version} */
int handle_v1_info(struct request *req)
{
	return reply_json(req, 200,
			  json_pack("{s:s, s:s, s:s}", "name", "tandem", "version",
				    req->app->version, "api_version", "v1"));
}
