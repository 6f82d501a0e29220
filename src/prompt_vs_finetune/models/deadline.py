"""A total deadline for each HTTP request of a hosted model. httpx's timeouts bound each read,
not the whole reply, so a server that trickles a byte a second kept a hosted job waiting
forever: this client's transport ends the reply's body with a read timeout (which the SDK
retries like any other) once `total_s` has passed since the request was sent.

The SDKs ship with their own httpx (`httpx` or its successor `httpx2`): the classes are built
on whichever the SDK's client is made of, so the SDK accepts the client and its exceptions."""

import sys
import time


def deadline_client(sdk, total_s: float):
    """An http client for `sdk` (the `openai` or `anthropic` module): the SDK's default one,
    with per-read timeouts and a total deadline of `total_s` per request."""
    httpx = sys.modules[sdk.DefaultHttpxClient.__mro__[1].__module__.split(".")[0]]

    class Until(httpx.SyncByteStream):
        def __init__(self, stream, deadline: float, request):
            self.stream, self.deadline, self.request = stream, deadline, request

        def __iter__(self):
            for chunk in self.stream:
                if time.monotonic() > self.deadline:
                    raise httpx.ReadTimeout(f"the reply took over {total_s:g} s in all "
                                            "(model.api.timeout_s)", request=self.request)
                yield chunk

        def close(self) -> None:
            self.stream.close()

    class DeadlineTransport(httpx.HTTPTransport):
        def handle_request(self, request):
            deadline = time.monotonic() + total_s
            response = super().handle_request(request)
            return httpx.Response(response.status_code, headers=response.headers,
                                  stream=Until(response.stream, deadline, request),
                                  extensions=response.extensions)

    limits = httpx.Limits(max_connections=1000, max_keepalive_connections=100)  # the SDKs'
    return sdk.DefaultHttpxClient(transport=DeadlineTransport(limits=limits), timeout=total_s)
