"""Runs moto's own application (the one `moto_server` serves), plus one fixture route for seeding
aged IAM state, under waitress.

Why waitress and not moto's `run_simple` (werkzeug's development server): werkzeug closes the
connection after every answer (`Connection: close`) and then waits 10 ms on the socket for a body
left unread, so every AWS request of keywarden's (thousands in a campaign) paid a new TCP
connection, a new server thread and that wait; the SDK's keep-alive agents could not keep a
connection. waitress (pinned in requirements-stack.txt, a production WSGI server) keeps
connections alive on a thread pool. One difference from werkzeug: waitress drops request headers
whose names hold an underscore (werkzeug passes S3 metadata keys with one through); keywarden
sends none.

moto stamps every access key with the time of its creation and never lets an API
caller set it, so an "over-age" or "stale" key cannot be produced through the AWS API
on a laptop. moto's own docs invite setting `AccessKey.last_used` directly; this
launcher exposes exactly that (and `create_date`) on one loopback-only route,
`POST /_keywarden/iam/backdate-access-key`, used by the demo seed and by tests.
Every AWS API request still goes to moto's unmodified application.

Usage: python moto-server.py HOST PORT
  PORT 0 takes any free port; with KEYWARDEN_PORT_FILE set, the port listened on is written
  there once the socket is bound (scripts/local-stack.ts reads it: a port picked beforehand and
  handed over could be taken by another process while Python imports moto).
"""

import json
import os
import sys
from datetime import datetime, timezone

from moto.iam.models import AccessKeyLastUsed, iam_backends
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from waitress import create_server
from werkzeug.wrappers import Request, Response

SEED_PATH = "/_keywarden/iam/backdate-access-key"


def _find_key(access_key_id):
    for account in list(iam_backends.values()):
        for backend in account.values():
            key = backend.access_keys.get(access_key_id)
            if key is not None:
                return key
    return None


def _parse_time(value):
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    # moto keeps naive UTC datetimes.
    return parsed.astimezone(timezone.utc).replace(tzinfo=None)


def backdate(environ, start_response):
    request = Request(environ)
    try:
        body = json.loads(request.get_data(as_text=True) or "{}")
        key = _find_key(body["accessKeyId"])
        if key is None:
            raise KeyError("no such access key: " + body["accessKeyId"])
        if body.get("createDate"):
            key.create_date = _parse_time(body["createDate"])
        if body.get("lastUsedDate"):
            key.last_used = AccessKeyLastUsed(
                timestamp=_parse_time(body["lastUsedDate"]),
                service=body.get("lastUsedService", "sts"),
                region=body.get("lastUsedRegion", "us-east-1"),
            )
        response = Response(json.dumps({"ok": True}), mimetype="application/json")
    except (KeyError, ValueError) as error:
        response = Response(json.dumps({"error": str(error)}), status=400, mimetype="application/json")
    return response(environ, start_response)


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    moto_app = DomainDispatcherApplication(create_backend_app)

    def app(environ, start_response):
        if environ.get("PATH_INFO") == SEED_PATH and environ.get("REQUEST_METHOD") == "POST":
            return backdate(environ, start_response)
        return moto_app(environ, start_response)

    server = create_server(
        app,
        host=host,
        port=port,
        # moto holds Python's GIL: more threads only contend for it (4 against 8: −1 s of CPU over
        # the revocation bench, whose clients keep ~50 connections open; waitress reads them all).
        threads=4,
        connection_limit=1000,
        asyncore_use_poll=True,
        channel_timeout=60,
        ident="moto",
    )
    port_file = os.environ.get("KEYWARDEN_PORT_FILE")
    if port_file:
        # Written whole, then renamed: a reader never sees half a number.
        with open(port_file + ".tmp", "w") as out:
            out.write(str(server.effective_port))
        os.replace(port_file + ".tmp", port_file)
    server.run()


if __name__ == "__main__":
    main()
