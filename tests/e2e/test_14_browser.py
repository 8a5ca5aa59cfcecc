"""Issue 15: a real browser on another origin uses the API — headless Chromium via selenium.

A small HTML page is served by a Python http.server on a second loopback port, which makes
it another origin than the API (same host, other port). Its script does what a web client
does, with nothing but browser APIs:
- `fetch`: register, log in, create a project with Idempotency-Key (and replay it), PATCH it
  with If-Match, hit a 412, page a list, get a 401; and it reads ETag, Location, Link,
  RateLimit, RateLimit-Policy, X-Request-Id and Idempotent-Replayed from JavaScript, which
  a browser only allows when the server exposes them;
- `EventSource` with a stream ticket (`?ticket=`; it cannot send Authorization) and a
  `WebSocket` with a ticket, each receiving a live event made by a `fetch`;
- a `WebSocket` authenticated by its first message (works without tickets too);
- a second page server on a third port is an origin that is NOT listed: there the browser
  itself refuses (`fetch` rejects with a TypeError, the WebSocket upgrade is refused).

Every test runs on each backend (a server per backend); one Chromium serves them all, since
a browser costs seconds to start.
"""

import functools
import http.server
import shutil
import tempfile
import threading

import pytest

from harness import BACKENDS, TandemServer

CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# How long one page script may run: only keeps a broken server from hanging the suite.
SCRIPT_TIMEOUT = 120

PAGE = r"""<!doctype html>
<html><head><meta charset="utf-8"><title>tandem cross-origin client</title></head>
<body><p>tandem test page</p>
<script>
const PASSWORD = "correct horse battery staple";
const EXPOSED = ["ETag", "Location", "Link", "RateLimit", "RateLimit-Policy", "Retry-After",
                 "X-Request-Id", "Idempotent-Replayed", "Content-Type"];

async function call(api, method, path, opts) {
  opts = opts || {};
  const headers = Object.assign({}, opts.headers || {});
  if (opts.token) headers["Authorization"] = "Bearer " + opts.token;
  const init = {method: method, headers: headers};
  if (opts.body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(opts.body);
  }
  const r = await fetch(api + path, init);
  const seen = {};
  for (const name of EXPOSED) seen[name] = r.headers.get(name);
  const text = await r.text();
  let body = null;
  try { body = JSON.parse(text); } catch (e) { body = text; }
  return {status: r.status, headers: seen, body: body};
}

async function restFlow(api, user) {
  const out = {};
  out.register = await call(api, "POST", "/v1/auth/register",
      {body: {username: user, email: user + "@example.com", password: PASSWORD}});
  out.login = await call(api, "POST", "/v1/auth/login",
      {body: {login: user, password: PASSWORD}});
  const token = out.login.body.access_token;
  const create = {token: token, body: {name: "from the browser"},
                  headers: {"Idempotency-Key": "browser-create-1"}};
  out.create = await call(api, "POST", "/v1/projects", create);
  out.replay = await call(api, "POST", "/v1/projects", create);
  const pid = out.create.body.id;
  out.patch = await call(api, "PATCH", "/v1/projects/" + pid,
      {token: token, body: {name: "renamed in the browser"},
       headers: {"If-Match": out.create.headers["ETag"]}});
  out.stale = await call(api, "PATCH", "/v1/projects/" + pid,
      {token: token, body: {name: "stale"}, headers: {"If-Match": out.create.headers["ETag"]}});
  out.second = await call(api, "POST", "/v1/projects", {token: token, body: {name: "second"}});
  out.page = await call(api, "GET", "/v1/projects?limit=1", {token: token});
  out.unauthenticated = await call(api, "GET", "/v1/projects");
  window.session = {token: token, pid: pid};
  return out;
}

async function ticket(api, token) {
  try {
    return await call(api, "POST", "/v1/realtime/tickets", {token: token});
  } catch (e) {
    return {status: 0, error: String(e)};  // e.g. no such route: its preflight is a 404
  }
}

async function sseFlow(api) {
  const s = window.session;
  const t = await ticket(api, s.token);
  if (t.status !== 201) return {ticket: t};
  return await new Promise((resolve) => {
    const res = {ticket: t, errors: 0};
    const url = api + "/v1/projects/" + s.pid + "/events/stream?ticket=" +
                encodeURIComponent(t.body.ticket);
    const es = new EventSource(url);
    // The event may arrive before the fetch that caused it has its answer: wait for both.
    const finish = () => {
      if (res.event && res.created) { es.close(); resolve(res); }
    };
    es.onopen = async () => {
      res.opened = true;
      res.created = await call(api, "POST", "/v1/projects/" + s.pid + "/tasks",
                               {token: s.token, body: {title: "seen through EventSource"}});
      finish();
    };
    es.addEventListener("task.created", (m) => {
      res.event = {lastEventId: m.lastEventId, data: JSON.parse(m.data)};
      finish();
    });
    es.onerror = () => {
      res.errors++;
      if (es.readyState === EventSource.CLOSED) resolve(res);
    };
  });
}

async function wsFlow(api, wsApi, useTicket) {
  const s = window.session;
  let url = wsApi + "/v1/realtime";
  const res = {messages: []};
  if (useTicket) {
    const t = await ticket(api, s.token);
    res.ticket = t;
    if (t.status !== 201) return res;
    url += "?ticket=" + encodeURIComponent(t.body.ticket);
  }
  return await new Promise((resolve) => {
    const ws = new WebSocket(url);
    const subscribe = () => ws.send(JSON.stringify(
        {type: "subscribe", project_id: s.pid, after: null}));
    ws.onopen = () => {
      res.opened = true;
      if (useTicket) subscribe();
      else ws.send(JSON.stringify({type: "auth", token: s.token}));
    };
    // The event may arrive before the fetch that caused it has its answer: wait for both.
    const finish = () => { if (res.event && res.created) ws.close(1000); };
    ws.onmessage = async (m) => {
      const msg = JSON.parse(m.data);
      res.messages.push(msg);
      if (msg.type === "authenticated") {
        subscribe();
      } else if (msg.type === "subscribed") {
        res.created = await call(api, "POST", "/v1/projects/" + s.pid + "/tasks",
                                 {token: s.token, body: {title: "seen through a WebSocket"}});
        finish();
      } else if (msg.type === "event" && msg.event.type === "task.created") {
        res.event = msg.event;
        finish();
      } else if (msg.type === "error") {
        ws.close(1000);
      }
    };
    ws.onclose = (e) => { res.close = {code: e.code, reason: e.reason}; resolve(res); };
  });
}

async function refusedFlow(api, wsApi) {
  const res = {};
  for (const [name, init] of [
      ["get", {}],
      ["post", {method: "POST", headers: {"Content-Type": "application/json"},
                body: JSON.stringify({name: "must not be created"})}]]) {
    try {
      const r = await fetch(api + (name === "get" ? "/v1" : "/v1/projects"), init);
      res[name] = "resolved " + r.status;
    } catch (e) {
      res[name] = e.name;
    }
  }
  res.ws = await new Promise((resolve) => {
    const ws = new WebSocket(wsApi + "/v1/realtime");
    ws.onopen = () => { ws.close(1000); resolve("open"); };
    ws.onclose = (e) => resolve("closed " + e.code);
  });
  return res;
}
</script></body></html>
"""

# Runs one of the page's functions; selenium passes its result back as JSON data.
RUN = """
const done = arguments[arguments.length - 1];
const fn = window[arguments[0]];
fn.apply(null, arguments[1]).then(done, (e) => done({thrown: String(e)}));
"""


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


class PageServer:
    """The page, served from its own loopback port (= its own origin) in a thread."""

    def __init__(self, directory):
        handler = functools.partial(Quiet, directory=str(directory))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.origin = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def chrome(profile_dir):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--disable-extensions",
                f"--user-data-dir={profile_dir}"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.set_script_timeout(SCRIPT_TIMEOUT)
    return driver


class Browser:
    def __init__(self, srv, listed, unlisted, driver):
        self.srv = srv
        self.listed = listed
        self.unlisted = unlisted
        self.driver = driver
        self.api = srv.base_url
        self.ws_api = f"ws://127.0.0.1:{srv.port}"
        self.page_at = None

    def run(self, page, fn, *args):
        if self.page_at != page.origin:
            self.driver.get(page.origin + "/index.html")
            self.page_at = page.origin
        out = self.driver.execute_async_script(RUN, fn, list(args))
        assert not (isinstance(out, dict) and "thrown" in out), out
        return out


@pytest.fixture(scope="module")
def chromium(tmp_path_factory):
    """One headless Chromium and the two page servers (a listed and an unlisted origin) for
    the module: starting a browser costs seconds, the backends can share it."""
    assert CHROMIUM, "chromium is missing: scripts/deps test installs it"
    tmp = tmp_path_factory.mktemp("browser")
    (tmp / "www").mkdir()
    (tmp / "www" / "index.html").write_text(PAGE, encoding="utf-8")
    listed, unlisted = PageServer(tmp / "www"), PageServer(tmp / "www")
    driver = None
    try:
        driver = chrome(tempfile.mkdtemp(prefix="chromium-", dir=tmp))
        yield listed, unlisted, driver
    finally:
        if driver is not None:
            driver.quit()
        listed.close()
        unlisted.close()


@pytest.fixture(scope="module", params=BACKENDS)
def browser(request, tmp_path_factory, module_stores, chromium):
    listed, unlisted, driver = chromium
    tmp = tmp_path_factory.mktemp(f"browser-{request.param}")
    store = module_stores(request.param, tmp / "data")
    srv = TandemServer(store, tmp, name=f"browser-{request.param}",
                       env={"TANDEM_CORS_ORIGINS": listed.origin, "TANDEM_RATE_LIMIT": "on"})
    srv.start()
    try:
        yield Browser(srv, listed, unlisted, driver)
    finally:
        assert srv.stop() == 0, srv.stderr_text()[-4000:]


@pytest.fixture(scope="module")
def session(browser):
    """The REST flow, run once from the listed origin; its answers as the page saw them."""
    return browser.run(browser.listed, "restFlow", browser.api, "pageuser")


def assert_ticket(res):
    t = res.get("ticket")
    assert t and t["status"] == 201, t
    assert isinstance(t["body"]["ticket"], str) and t["body"]["expires_in"] == 30, t


def test_fetch_from_a_listed_origin_reads_the_exposed_headers(session):
    s = session
    assert s["register"]["status"] == 201, s["register"]
    assert s["login"]["status"] == 200, s["login"]
    for step in ("register", "login", "create", "patch", "page", "unauthenticated"):
        h = s[step]["headers"]
        assert h["X-Request-Id"], (step, h)
        assert h["RateLimit"] and h["RateLimit-Policy"], (step, h)
    create = s["create"]
    assert create["status"] == 201, create
    pid = create["body"]["id"]
    assert create["headers"]["Location"].endswith(f"/v1/projects/{pid}")
    assert create["headers"]["ETag"] == '"1"'
    replay = s["replay"]
    assert replay["status"] == 201 and replay["headers"]["Idempotent-Replayed"] == "true"
    assert replay["body"] == create["body"]
    patch = s["patch"]
    assert patch["status"] == 200, patch
    assert patch["body"]["name"] == "renamed in the browser"
    assert patch["headers"]["ETag"] == '"2"'
    stale = s["stale"]
    assert stale["status"] == 412 and stale["body"]["code"] == "precondition_failed"
    assert stale["headers"]["Content-Type"].startswith("application/problem+json")
    page = s["page"]
    assert page["status"] == 200 and len(page["body"]["data"]) == 1
    assert page["headers"]["Link"] and 'rel="next"' in page["headers"]["Link"]
    unauth = s["unauthenticated"]
    assert unauth["status"] == 401 and unauth["body"]["code"] == "unauthenticated"
    assert unauth["body"]["instance"] == unauth["headers"]["X-Request-Id"]


def test_event_source_with_a_ticket_receives_a_live_event(browser, session):
    res = browser.run(browser.listed, "sseFlow", browser.api)
    assert_ticket(res)
    assert res.get("opened"), res
    assert res["created"]["status"] == 201, res
    event = res["event"]["data"]
    assert event["type"] == "task.created"
    assert event["data"]["id"] == res["created"]["body"]["id"]
    assert res["event"]["lastEventId"] == str(event["seq"])


def test_websocket_with_a_ticket_receives_a_live_event(browser, session):
    res = browser.run(browser.listed, "wsFlow", browser.api, browser.ws_api, True)
    assert_ticket(res)
    types = [m["type"] for m in res["messages"]]
    assert "authenticated" not in types and types[0] == "subscribed", res
    assert res["event"]["data"]["id"] == res["created"]["body"]["id"], res
    assert res["close"]["code"] == 1000, res


def test_websocket_with_first_message_auth_receives_a_live_event(browser, session):
    res = browser.run(browser.listed, "wsFlow", browser.api, browser.ws_api, False)
    types = [m["type"] for m in res["messages"]]
    assert types[:2] == ["authenticated", "subscribed"], res
    assert res["event"]["type"] == "task.created", res
    assert res["event"]["data"]["id"] == res["created"]["body"]["id"], res


def test_an_unlisted_origin_is_refused_by_the_browser(browser, session):
    before = [e for e in browser.srv.access_log()
              if e["method"] == "POST" and e["path"] == "/v1/projects"]
    res = browser.run(browser.unlisted, "refusedFlow", browser.api, browser.ws_api)
    # The browser refuses to hand the answer (or, for the POST, to send the request after
    # its preflight got no grant): fetch rejects with a TypeError.
    assert res["get"] == "TypeError", res
    assert res["post"] == "TypeError", res
    # The upgrade is answered 403: the browser reports an abnormal closure.
    assert res["ws"] == "closed 1006", res
    after = [e for e in browser.srv.access_log()
             if e["method"] == "POST" and e["path"] == "/v1/projects"]
    assert after == before, "the POST went out despite the refused preflight"
    preflights = [e for e in browser.srv.access_log()
                  if e["method"] == "OPTIONS" and e["path"] == "/v1/projects"]
    assert preflights and preflights[-1]["status"] == 204
    # Back on the listed origin, the same calls work.
    assert browser.run(browser.listed, "refusedFlow", browser.api, browser.ws_api)["get"] \
        == "resolved 200"
