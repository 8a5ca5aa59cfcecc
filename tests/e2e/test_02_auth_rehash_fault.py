"""Login when the password-hash upgrade fails: the user still gets in.

A login whose stored hash was made at another bcrypt cost upgrades it. That upgrade is a
courtesy: if its UPDATE fails (here a trigger makes every UPDATE of users fail), a correct
password must still get a session, on both backends. On PostgreSQL a failed statement aborts
its transaction, so an upgrade made inside the login's transaction turned a correct password
into a 500.
"""
import sqlite3

from test_02_auth import SECRET, login, me, register, user_row


def fail_user_updates(store):
    if store.backend == "postgres":
        store.cluster.psql("""
            CREATE FUNCTION fail_update() RETURNS trigger LANGUAGE plpgsql AS $f$
            BEGIN RAISE EXCEPTION 'injected failure'; END $f$;
            CREATE TRIGGER fail_update BEFORE UPDATE ON users
            FOR EACH ROW EXECUTE FUNCTION fail_update();""", dbname=store.dbname)
        return
    con = sqlite3.connect(str(store.sqlite_path), timeout=30)
    try:
        con.executescript("""CREATE TRIGGER fail_update BEFORE UPDATE ON users
            BEGIN SELECT RAISE(ABORT, 'injected failure'); END;""")
    finally:
        con.close()


def test_login_succeeds_when_the_rehash_fails(tandem_server):
    first = tandem_server(env={"TANDEM_JWT_SECRET": SECRET})
    uid = register(first.api(), "nora")["user"]["id"]
    old_hash = user_row(first.store, uid)["password_hash"]
    assert old_hash.startswith("$2b$04$")
    assert first.stop() == 0

    fail_user_updates(first.store)
    second = tandem_server(env={"TANDEM_JWT_SECRET": SECRET, "TANDEM_BCRYPT_COST": "5"},
                           store=first.store)
    api = second.api()
    r = login(api, "nora")
    assert r.status_code == 200, r.text
    token = r.json()["access_token"]
    assert me(api, token).status_code == 200
    # The upgrade did not happen, and nothing else changed.
    assert user_row(second.store, uid)["password_hash"] == old_hash
    # The next login tries again and still gets in.
    assert login(api, "nora@example.com").status_code == 200
