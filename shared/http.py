"""What every service's HTTP side shares: middlewares, health, readiness, metrics, run."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import gc
import re
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from random import getrandbits as _random_bits
from typing import Any

import msgspec
from aiohttp import web
from opentelemetry import context as otel_context
from opentelemetry import trace
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest

from shared.config import Settings
from shared.deps import Dependency, Unavailable
from shared.errors import ApiError
from shared.inputs import check_request
from shared.logging import bind_contextvars, clear_contextvars, get_logger
from shared.logging import setup as setup_logging
from shared.server import Runner, handler_args
from shared.tasks import cancel_requested, stop_task
from shared.telemetry import (
    HTTP_IN_FLIGHT,
    HTTP_LATENCY,
    HTTP_REQUESTS,
    extract_http,
    setup_tracing,
    tracer,
)

log = get_logger(__name__)
SETTINGS = web.AppKey("settings", Settings)
DEPENDENCIES = web.AppKey("dependencies", list)
OPTIONAL_DEPENDENCIES = web.AppKey("optional_dependencies", set)  # names of those /readyz does not wait for
# name -> a one-line description /readyz shows under "details" (a partial capability, not a failure)
READY_DETAILS = web.AppKey("ready_details", dict)
_encoder = msgspec.json.Encoder()
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
QUIET_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
# A caller's X-Request-ID is kept only when it is a plain token: it is echoed and logged.
REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """A JSON response encoded with msgspec (Structs, datetimes and dicts alike)."""
    return web.Response(
        body=_encoder.encode(data), status=status, headers=headers, content_type="application/json"
    )


def error_response(err: ApiError) -> web.Response:
    return json_response(err.body(), status=err.status, headers=err.headers)


def _route_name(request: web.Request) -> str:
    info = request.match_info.route.resource
    return info.canonical if info is not None else "unmatched"


@functools.cache
def _in_flight(service: str) -> Any:
    return HTTP_IN_FLIGHT.labels(service)  # a labelled child costs a lookup and a lock per call


@web.middleware
async def observe(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Request id, trace span, one summary log line, metrics, and the JSON error format."""
    settings = request.app[SETTINGS]
    given = request.headers.get("X-Request-ID", "")
    # Not uuid4: a request id must be unique, not unguessable, and uuid4 reads the kernel's
    # random source (a system call) on every request; 128 bits of the process's PRNG are enough.
    request_id = given if REQUEST_ID.fullmatch(given) else f"{_random_bits(128):032x}"
    clear_contextvars()
    bind_contextvars(service=settings.service, request_id=request_id)
    route = _route_name(request)
    started = time.perf_counter()
    status = 500
    in_flight = _in_flight(settings.service)
    in_flight.inc()
    try:
        if request.headers.get("Upgrade", "").lower() == "websocket":
            response = await _observe_socket(request, handler, route, request_id)
            status = response.status
            return response
        token = otel_context.attach(extract_http(request.headers))
        try:
            with tracer("snapline.http").start_as_current_span(
                f"{request.method} {route}", kind=trace.SpanKind.SERVER
            ) as span:
                span.set_attribute("http.request_id", request_id)
                response = await _to_response(request, handler)
                status = response.status
                span.set_attribute("http.status_code", status)
        finally:
            otel_context.detach(token)
        response.headers["X-Request-ID"] = request_id
        return response
    finally:
        in_flight.dec()
        elapsed = time.perf_counter() - started
        # Recorded once the answer is on its way: the handler's return is followed by the
        # response's write in the same step of this task, and the callback runs after that step,
        # so the caller does not wait for its log line and metrics (in the request's log context).
        asyncio.get_running_loop().call_soon(
            _record, settings.service, route, request, status, elapsed, context=contextvars.copy_context()
        )


def _record(service: str, route: str, request: web.Request, status: int, elapsed: float) -> None:
    HTTP_REQUESTS.labels(service, route, request.method, str(status)).inc()
    HTTP_LATENCY.labels(service, route, request.method).observe(elapsed)
    if request.path not in QUIET_PATHS:
        log.info(
            "request", method=request.method, path=request.path, status=status, ms=round(elapsed * 1000, 2)
        )


# A WebSocket's server span covers its handshake and ends with the 101 (end_socket_span), so a
# connection open for hours holds no span, attributes or trace context: about 3 KB per viewer.
_SOCKET_SPAN: web.RequestKey[tuple[trace.Span, object]] = web.RequestKey("socket_span")


async def _observe_socket(
    request: web.Request, handler: Handler, route: str, request_id: str
) -> web.StreamResponse:
    """Run a WebSocket handler under a span that ends with the handshake."""
    _start_socket_span(request, f"{request.method} {route}", request_id)
    try:
        response = await _to_response(request, handler)
    except BaseException:
        _finish_socket_span(request, None)
        raise
    _finish_socket_span(request, response.status)  # unless the 101 ended it already
    if not response.prepared:
        response.headers["X-Request-ID"] = request_id
    return response


def _start_socket_span(request: web.Request, name: str, request_id: str) -> None:
    parent = extract_http(request.headers)
    span = tracer("snapline.http").start_span(name, context=parent, kind=trace.SpanKind.SERVER)
    span.set_attribute("http.request_id", request_id)
    if span.get_span_context().is_valid:  # log lines of the socket's life keep naming the trace
        bind_contextvars(trace_id=format(span.get_span_context().trace_id, "032x"))
    token = otel_context.attach(trace.set_span_in_context(span, parent))
    request[_SOCKET_SPAN] = (span, token)


def _finish_socket_span(request: web.Request, status: int | None) -> None:
    held = request.pop(_SOCKET_SPAN, None)
    if held is None:
        return
    span, token = held
    if status is not None:
        span.set_attribute("http.status_code", status)
    span.end()
    otel_context.detach(token)


async def end_socket_span(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: a WebSocket's 101 ends its span and lets its trace context go."""
    if response.status == 101:
        _finish_socket_span(request, 101)


async def _to_response(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        check_request(request)
        return await handler(request)
    except ApiError as err:
        return error_response(err)
    except Unavailable as exc:
        return error_response(
            ApiError(503, "unavailable", str(exc), headers={"Retry-After": str(exc.retry_after)})
        )
    except web.HTTPRequestEntityTooLarge:
        limit = request.app[SETTINGS].max_body_bytes
        message = f"request body is larger than the limit of {limit} bytes"
        return error_response(ApiError(413, "payload_too_large", message))
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return error_response(_http_error(request, exc))
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("unhandled_error", path=request.path)
        return error_response(
            ApiError(500, "internal", "internal error; the request id names it in the logs")
        )


def _http_error(request: web.Request, exc: web.HTTPException) -> ApiError:
    code = exc.reason.lower().replace(" ", "_")
    if exc.status == 404:
        return ApiError(404, code, f"no route for {request.method} {request.path}")
    if isinstance(exc, web.HTTPMethodNotAllowed):
        allowed = ", ".join(sorted(exc.allowed_methods))
        message = f"{request.method} is not allowed on {request.path}; allowed: {allowed}"
        return ApiError(405, code, message, headers={"Allow": allowed})
    return ApiError(exc.status, code, exc.reason)


async def healthz(_: web.Request) -> web.Response:
    return json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    deps: list[Dependency[Any]] = request.app[DEPENDENCIES]
    results = await asyncio.gather(*(d.healthy() for d in deps))
    checks = {d.name: ("ok" if ok else err) for d, (ok, err) in zip(deps, results, strict=True)}
    optional = request.app[OPTIONAL_DEPENDENCIES]
    ready = all(ok or d.name in optional for d, (ok, _) in zip(deps, results, strict=True))
    body: dict[str, Any] = {"status": "ready" if ready else "not_ready", "checks": checks}
    details = {name: describe() for name, describe in request.app[READY_DETAILS].items()}
    if details:
        body["details"] = details  # what works partly (say, no EP/WP model) without making it unready
    return json_response(body, status=200 if ready else 503)


async def metrics(_: web.Request) -> web.Response:
    resp = web.Response(body=generate_latest())
    resp.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return resp


def base_app(settings: Settings) -> web.Application:
    """An application with the shared middleware, health, readiness and metrics routes."""
    setup_logging(settings.service, settings.log_level, settings.log_json)
    setup_tracing(settings.service, settings.tracing)
    app = web.Application(
        middlewares=[observe], client_max_size=settings.max_body_bytes, handler_args=handler_args(settings)
    )
    app[SETTINGS] = settings
    app[DEPENDENCIES] = []
    app[OPTIONAL_DEPENDENCIES] = set()
    app[READY_DETAILS] = {}
    app.on_response_prepare.append(end_socket_span)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    return app


def add_dependency(
    app: web.Application, key: web.AppKey[Any], dep: Dependency[Any], required: bool = True
) -> None:
    """Register `dep` under `key`: connected in the background, checked by /readyz, closed last.

    `required=False`: the service answers correctly without it (say, a cache's shared tier), so
    /readyz reports its state but stays ready while it is down.
    """
    app[key] = dep
    app[DEPENDENCIES].append(dep)
    if not required:
        app[OPTIONAL_DEPENDENCIES].add(dep.name)

    async def ctx(_: web.Application) -> AsyncIterator[None]:
        dep.start()
        yield
        await dep.stop()

    app.cleanup_ctx.append(ctx)


def add_background(app: web.Application, name: str, run: Callable[[], Awaitable[None]]) -> None:
    """Run `run()` as a task for the app's lifetime; cancelled and awaited at shutdown."""

    async def ctx(_: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(_supervise(name, run), name=name)
        yield
        await stop_task(task, name)

    app.cleanup_ctx.append(ctx)


async def _supervise(name: str, run: Callable[[], Awaitable[None]]) -> None:
    delay = 0.5
    while True:
        try:
            await run()
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if cancel_requested():  # a cancellation some library turned into an error: stop
                raise asyncio.CancelledError from exc
            log.warning(
                "background_task_failed",
                task=name,
                error=f"{type(exc).__name__}: {exc}",
                retry_in=delay,
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)


GC_PAUSE = Histogram(
    "snapline_gc_pause_seconds",
    "Pauses of the cyclic garbage collector, by generation (a full pass holds up every request and message)",
    ["generation"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
)
GC_FREEZES = Counter(
    "snapline_gc_freezes_total",
    "Young passes after which every surviving object was moved out of later passes (gc.freeze)",
)
GC_THAWS = Counter(
    "snapline_gc_thaws_total", "Frozen objects returned to the collector, each followed by one full pass"
)
GC_THAW_COLLECTED = Gauge(
    "snapline_gc_thaw_collected_objects",
    "Objects the full pass after the last thaw freed (garbage cycles that were frozen)",
)
GC_PAUSE_WARN = 0.1  # seconds: a pause this long is logged


class CollectorWatch:
    """Times every pass of the cyclic collector (a metric; a log line for a long one) and keeps
    long-lived objects out of full passes.

    A process holding 10,000 WebSocket viewers tracks a million objects that live as long as the
    connections, and every ping, pong and message replaces a few per connection (timers, futures,
    the receive coroutine's frame). Those replacements survive the young passes, so they pile up in
    the oldest generation and trigger a full pass every 20-50 s; one such pass over the unfrozen
    remainder took 0.1-0.4 s in live (up to 1.2 s over everything), found nothing, and held every
    message up. So every `freeze_seconds` a young pass runs (young garbage cycles are freed), then
    every survivor is moved to the permanent generation (gc.freeze, which moves lists: no walk);
    the oldest generation stays nearly empty and full passes stay short. Frozen objects are still
    freed by reference counting; only a garbage cycle among them waits for the thaw: every
    `thaw_seconds` they are returned (gc.unfreeze) and one full pass frees such cycles (a bounded
    delay, not a leak; the pass is timed like any other).
    """

    def __init__(self, freeze_seconds: float, thaw_seconds: float) -> None:
        self.freeze_seconds = freeze_seconds
        self.thaw_seconds = thaw_seconds
        self._started = 0.0

    def callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        took = time.perf_counter() - self._started
        generation = info["generation"]
        GC_PAUSE.labels(str(generation)).observe(took)
        if took >= GC_PAUSE_WARN:
            log.warning(
                "gc_pause", generation=generation, seconds=round(took, 3), collected=info["collected"]
            )

    def freeze(self) -> None:
        gc.collect(1)
        gc.freeze()
        GC_FREEZES.inc()

    def thaw(self) -> int:
        """Return the frozen objects and run the full pass that frees garbage cycles among them."""
        started = time.perf_counter()
        gc.unfreeze()
        collected = gc.collect()
        GC_THAWS.inc()
        GC_THAW_COLLECTED.set(collected)
        log.info("gc_thawed", collected=collected, seconds=round(time.perf_counter() - started, 3))
        return collected

    async def run(self) -> None:
        if not self.freeze_seconds:
            return
        thawed = time.monotonic()
        while True:
            await asyncio.sleep(self.freeze_seconds)
            if self.thaw_seconds and time.monotonic() - thawed >= self.thaw_seconds:
                thawed = time.monotonic()
                self.thaw()
            self.freeze()


def serve(app: web.Application, settings: Settings) -> None:
    """Run until SIGTERM/SIGINT; in-flight requests drain for up to `shutdown_timeout`."""
    # The modules and the app live as long as the process: freezing them keeps the cyclic
    # collector's full passes, which a large fetch of plays or a burst of requests triggers,
    # from rescanning them (measured in analytics: full passes 120 ms -> 15 ms per 6,800 plays).
    gc.collect()
    gc.freeze()
    if settings.event_loop == "uvloop":
        import uvloop

        uvloop.run(_serve(app, settings))
    else:
        asyncio.run(_serve(app, settings))


async def _serve(app: web.Application, settings: Settings) -> None:
    # web.run_app, with the Runner that answers malformed HTTP in the JSON error format.
    loop = asyncio.get_running_loop()
    log.info(
        "starting", host=settings.host, port=settings.port, event_loop=type(loop).__module__.split(".")[0]
    )
    watch = CollectorWatch(settings.gc_freeze_seconds, settings.gc_thaw_seconds)
    gc.callbacks.append(watch.callback)
    collector = asyncio.create_task(watch.run(), name="gc-watch")
    runner = Runner(app, access_log=None, shutdown_timeout=settings.shutdown_timeout)
    await runner.setup()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await web.TCPSite(
            runner, settings.host, settings.port, reuse_port=settings.reuse_port or None
        ).start()
        await stop.wait()
    finally:
        collector.cancel()
        await runner.cleanup()
