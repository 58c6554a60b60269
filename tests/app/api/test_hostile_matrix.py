"""Every route against a battery of hostile and careless requests: odd ids, unreadable and
ill-typed bodies, wrong content types, odd query strings, wrong methods. None may answer 5xx,
and every refusal is the JSON error shape. (schemathesis, in test_openapi_fuzz.py, generates
requests from the document; this list is written by hand from what clients get wrong.)
"""

import json

from tests.app.api.support import LYRICS

IDS = ["0", "-1", "01", "9223372036854775807", "9223372036854775808", str(10**30), "abc",
       "1e3", "1.5", "%00", "%F0%9F%98%80"]
QUERIES = ["page=-1", "page=0", "page=abc", "page=1.5", f"per_page={10**20}", "per_page=0",
           "page=1&page=2", "page=%00", "page=", "per_page=-5&page=9223372036854775807",
           "x=" + "y" * 5000]
SONG = {"title": "T", "artist": "A", "lyrics": LYRICS}
# (description, body bytes, content type)
RAW_BODIES = [
    ("no body", b"", None),
    ("empty json object", b"{}", "application/json"),
    ("json null", b"null", "application/json"),
    ("json list", b"[]", "application/json"),
    ("json string", b'"song"', "application/json"),
    ("json number", b"12", "application/json"),
    ("json true", b"true", "application/json"),
    ("truncated json", b'{"title": "T"', "application/json"),
    ("trailing garbage", b'{"title": "T"} x', "application/json"),
    ("invalid utf-8", b'{"title": "\xff\xfe"}', "application/json"),
    ("utf-16 json", json.dumps(SONG).encode("utf-16"), "application/json"),
    ("nested 20,000 deep", b"[" * 20_000 + b"]" * 20_000, "application/json"),
    ("nested objects", b'{"a":' * 5_000 + b"1" + b"}" * 5_000, "application/json"),
    ("form body", b"title=T&artist=A", "application/x-www-form-urlencoded"),
    ("text body", b"just some lyrics", "text/plain"),
    ("json as text/plain", json.dumps(SONG).encode(), "text/plain"),
    ("no content type", json.dumps(SONG).encode(), None),
    ("NaN", b'{"title": NaN, "artist": "A", "lyrics": "x"}', "application/json"),
    ("huge number", b'{"user_id": 1' + b"0" * 5000 + b"}", "application/json"),
]
FIELD_VALUES = [None, 0, -1, 1.5, 2**63, 10**30, True, "", " ", "\x00", "\ud800", "x" * 25_000,
                [], {}, ["a"], {"a": 1}, "1", "true"]
FIELDS = ["title", "artist", "lyrics", "album", "user_id", "force", "songs", "song_ids", "name",
          "description", "unknown_field"]


def _requests(rules):
    """(method, path, kwargs) for every route and hostile variant."""
    for rule, methods in rules:
        paths = [rule]
        if "<" in rule:
            stem = rule.split("<")[0]
            tail = rule.split(">", 1)[1]
            paths = [f"{stem}{spelling}{tail}" for spelling in IDS + ["1"]]
        for method in methods:
            for path in paths:
                yield method, path, {}
            if method == "GET":
                for query in QUERIES:
                    yield method, f"{paths[-1]}?{query}", {}
            else:
                for _what, body, kind in RAW_BODIES:
                    yield method, paths[-1], {"data": body, "content_type": kind}
                for field in FIELDS:
                    for value in FIELD_VALUES:
                        body = {**SONG, "name": "P", field: value}
                        yield method, paths[-1], {"data": json.dumps(body), "content_type":
                                                  "application/json"}
        for wrong in {"GET", "POST", "PUT", "DELETE", "PATCH"} - set(methods):
            yield wrong, paths[-1], {}


def test_no_hostile_request_is_a_server_error(app, admin_headers, create_song, create_playlist):
    create_playlist(2)
    app.extensions["selah.model_store"].get()
    client = app.test_client()
    rules = [(rule.rule, sorted(rule.methods - {"HEAD", "OPTIONS"}))
             for rule in app.url_map.iter_rules() if not rule.rule.startswith("/static")]
    failures, sent, statuses = [], 0, {}
    for method, path, kwargs in _requests(rules):
        response = client.open(path, method=method, headers=admin_headers, **kwargs)
        sent += 1
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
        problem = None
        if response.status_code >= 500:
            problem = "server error"
        elif response.status_code >= 400:
            body = response.get_json(silent=True)
            if not (isinstance(body, dict) and {"code", "message"} <= set(body.get("error", {}))):
                problem = "not the JSON error shape"
        if problem:
            failures.append((problem, response.status_code, method, path[:80],
                             str(kwargs.get("data"))[:60], response.get_data(as_text=True)[:120]))
    print(f"{sent} hostile requests, {len(failures)} failures, statuses {sorted(statuses.items())}")
    assert sent > 2000, sent  # the battery really ran
    assert failures == [], f"{len(failures)} of {sent}: {failures[:10]}"
