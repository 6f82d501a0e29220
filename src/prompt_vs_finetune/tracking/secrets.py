"""Secrets never reach the tracking store or a file a run writes: values under secret-looking
keys, the password of any user:password@host URI and keys in URL query strings become ***."""

import re

# values of keys like these, and passwords inside URIs, never reach MLflow
_SECRET_KEY = re.compile(r"(^|[_-])(api[_-]?key|token|secret|password|passwd|credentials?)$",
                         re.I)
_URI_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][\w+.-]*://[^/\s:@]+:)[^/\s@]+(?P<tail>@)")
# a key passed in a URL's query string (`https://host/v1?api_key=...`)
_QUERY_SECRET = re.compile(r"(?P<head>[?&](?:api[_-]?key|key|token|access_token|secret|"
                           r"password|sig|signature)=)[^&#\s]+", re.I)
REDACTED = "***"


def redact(value):
    """The config with secrets replaced by ***: values under secret-looking keys, the
    password of any user:password@host URI and keys in URL query strings, at any depth."""
    if isinstance(value, dict):
        return {k: REDACTED if _SECRET_KEY.search(str(k)) and v not in (None, "") else redact(v)
                for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    if isinstance(value, str):
        value = _URI_PASSWORD.sub(rf"\g<head>{REDACTED}\g<tail>", value)
        return _QUERY_SECRET.sub(rf"\g<head>{REDACTED}", value)
    return value
