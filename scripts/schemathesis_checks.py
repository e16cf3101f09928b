"""Checks layercake adds to schemathesis's own (loaded by .ci/run with
SCHEMATHESIS_HOOKS=schemathesis_checks).

error_bodies_are_json: every 4xx and 5xx answer carries the JSON error
body {"error": {"code", "message"}} (a HEAD answer has no body at all).
"""

import json

import schemathesis


@schemathesis.check
def error_bodies_are_json(ctx, response, case):
    if response.status_code < 400 or case.method.upper() == "HEAD":
        return None
    content_type = ";".join(response.headers.get("content-type", []))
    if not content_type.startswith("application/json"):
        raise AssertionError(
            f"{response.status_code} answered with Content-Type {content_type!r}, not JSON"
        )
    try:
        body = json.loads(response.content)
    except ValueError as e:
        raise AssertionError(f"{response.status_code} body is not JSON: {e}") from e
    error = body.get("error") if isinstance(body, dict) else None
    if not (
        isinstance(error, dict)
        and isinstance(error.get("code"), str)
        and isinstance(error.get("message"), str)
    ):
        raise AssertionError(f"{response.status_code} body is not an error object: {body!r:.200}")
    if response.status_code >= 500 and not error.get("requestId"):
        raise AssertionError(f"{response.status_code} body carries no requestId")
    return None
