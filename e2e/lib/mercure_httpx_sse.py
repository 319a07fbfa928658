"""A Mercure client from another ecosystem: tokens minted by PyJWT, updates published with httpx,
streams read with httpx-sse (e2e/lib/mercure.mjs runs it in the venv ./scripts/test makes).

Usage: python mercure_httpx_sse.py JOB, JOB being JSON:
  {"issuer", "secret", "audience", "hub",
   "publish": [[[name, value], ...], ...],               forms POSTed first, in order
   "streams": [{"query": [[name, value], ...], "headers": {...}, "until_id": ID}, ...]}
Each stream is read until the event with id `until_id` came (httpx's read timeout bounds it).
Prints JSON: {"pyjwt", "httpx_sse", "token_header", "published": [ids], "streams": [{status,
"mercure_last_event_id", "content_type", "events": [{id, event, data, retry}]}]}.
"""

import json
import sys
import time
from importlib.metadata import version

import httpx
import jwt
from httpx_sse import connect_sse

DETAIL_TYPE = "https://mercure.rocks/authorization-detail"


def mint(job):
    now = int(time.time())
    claims = {
        "iss": job["issuer"],
        "aud": job["audience"],
        "sub": "httpx-sse",
        "iat": now,
        "exp": now + 600,
        "authorization_details": [
            {"type": DETAIL_TYPE, "actions": ["publish", "subscribe"], "topics": [{"match": "*"}]},
        ],
    }
    return jwt.encode(claims, job["secret"], algorithm="HS256", headers={"typ": "at+jwt"})


def main():
    job = json.loads(sys.argv[1])
    token = mint(job)
    auth = {"Authorization": f"Bearer {token}"}
    out = {
        "pyjwt": version("pyjwt"),
        "httpx_sse": version("httpx-sse"),
        "token_header": jwt.get_unverified_header(token),
        "published": [],
        "streams": [],
    }
    with httpx.Client(timeout=httpx.Timeout(10.0)) as client:
        for form in job.get("publish", []):
            res = client.post(job["hub"], data=_multi(form), headers=auth)
            if res.status_code != 200:
                raise SystemExit(f"publish {form} answered {res.status_code}: {res.text}")
            out["published"].append(res.text)
        for stream in job.get("streams", []):
            headers = {**auth, **stream.get("headers", {})}
            url = httpx.URL(job["hub"], params=stream["query"])
            with connect_sse(client, "GET", url, headers=headers) as source:
                res = source.response
                got = {
                    "status": res.status_code,
                    "mercure_last_event_id": res.headers.get("mercure-last-event-id"),
                    "content_type": res.headers.get("content-type"),
                    "events": [],
                }
                if res.status_code == 200:
                    for sse in source.iter_sse():
                        got["events"].append({"id": sse.id, "event": sse.event, "data": sse.data, "retry": sse.retry})
                        if sse.id == stream["until_id"]:
                            break
                else:
                    res.read()
                    got["body"] = res.text
                out["streams"].append(got)
    print(json.dumps(out))


def _multi(pairs):
    """[[name, value], ...] as httpx form data, repeated names as lists."""
    form = {}
    for name, value in pairs:
        form.setdefault(name, []).append(value)
    return form


if __name__ == "__main__":
    main()
