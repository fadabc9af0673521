"""A stand-in for the Azure Service Bus management REST API, for tests only.

There is no Azure here, so the azure-servicebus scaler is tested against this local HTTPS
server, which speaks the part of the management protocol the SDK's
`ServiceBusAdministrationClient` uses to read message counts, in the Atom XML that Service Bus
sends (shapes taken from the SDK's recorded responses):

* `GET /<queue>?api-version=...`: a queue entry with `QueueDescription` and `CountDetails`; a
  missing queue answers 200 with the empty "Publicly Listed Services" feed, as Azure does (the
  SDK turns that into ResourceNotFoundError).
* `GET /$Resources/queues?$skip=&$top=`: the queue listing, paged with a `next` link.
* `GET /<topic>/Subscriptions/<sub>` and `GET /<topic>/Subscriptions?$skip=&$top=`: a
  subscription entry and the subscription listing; a missing topic or subscription is a 404.
* Every request must carry `Authorization: SharedAccessSignature sr=...&sig=...&se=...&skn=...`
  signed with HMAC-SHA256 by the configured key; a missing, expired or badly signed token or an
  unknown key name is a 401 with Azure's `<Error>` body.

The test sets entities and counts (`set_queue`, `set_subscription`), reads the request log
(`requests`) and the number of TCP connections the server holds (`open_connections()`). The
server runs its own event loop in a thread, so a synchronous benchmark can use it as well.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import hmac
import secrets
import ssl
import tempfile
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TypeVar
from urllib.parse import parse_qs, quote, quote_plus, urlencode
from xml.sax.saxutils import escape

from aiohttp import web

from adapter.certs import issue, new_ca
from scalers.params import TriggerParams

ATOM = "http://www.w3.org/2005/Atom"
SB = "http://schemas.microsoft.com/netservices/2010/10/servicebus/connect"
SB_COUNTS = "http://schemas.microsoft.com/netservices/2011/06/servicebus"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
FEED_TYPE = "application/atom+xml;type=feed;charset=utf-8"
ENTRY_TYPE = "application/atom+xml;type=entry;charset=utf-8"
T = TypeVar("T")


@dataclass(frozen=True)
class Counts:
    """The message counts of one queue or subscription."""

    active: int = 0
    dead_letter: int = 0
    scheduled: int = 0

    @property
    def total(self) -> int:
        return self.active + self.dead_letter + self.scheduled


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the stand-in saw it (after authentication, whatever the answer)."""

    method: str
    path: str
    query: dict[str, str]
    status: int


@dataclass
class _Namespace:
    queues: dict[str, tuple[str, Counts]] = field(default_factory=dict)  # casefold -> (name, counts)
    topics: dict[str, tuple[str, dict[str, tuple[str, Counts]]]] = field(default_factory=dict)


class ServiceBusStandIn:
    """A local HTTPS stand-in for one Service Bus namespace (a context manager)."""

    def __init__(self, *, key_name: str = "RootManageSharedAccessKey", key: str | None = None,
                 namespace: str = "standin") -> None:
        self.key_name = key_name
        self.key = key if key is not None else base64.b64encode(secrets.token_bytes(32)).decode()
        self.namespace = namespace
        ca = new_ca("servicebus-standin-ca")
        self._server_pair = issue(ca, "127.0.0.1", hosts=["127.0.0.1", "localhost"], server=True)
        self.ca_pem = ca.cert_pem.decode()
        self.port = 0
        self._lock = threading.Lock()
        self._entities = _Namespace()
        self._requests: list[RecordedRequest] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None

    # -- what the test sets and reads ------------------------------------------------------

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def connection_string(self, *, key: str | None = None, key_name: str | None = None) -> str:
        """A namespace connection string for this stand-in (optionally with another key)."""
        return (f"Endpoint=sb://{self.host}/;SharedAccessKeyName={key_name or self.key_name};"
                f"SharedAccessKey={key if key is not None else self.key}")

    def sas_connection_string(self, *, expires_in: float = 3600) -> str:
        """A connection string carrying a ready SAS token for the namespace instead of the key."""
        audience = f"https://{self.host}"
        expiry = str(int(time.time() + expires_in))
        token = urlencode({"sr": audience, "sig": _sign(self.key, audience, expiry), "se": expiry,
                           "skn": self.key_name})
        return f"Endpoint=sb://{self.host}/;SharedAccessSignature=SharedAccessSignature {token}"

    def trigger_params(self, metadata: Mapping[str, str], *, connection: str | None = None,
                       trust: bool = True) -> TriggerParams:
        """Trigger parameters for this namespace: `connection` (and the stand-in's `ca`) as auth."""
        auth = {"connection": connection or self.connection_string()}
        if trust:
            auth["ca"] = self.ca_pem
        return TriggerParams(metadata=metadata, auth=auth)

    def set_queue(self, name: str, active: int, *, dead_letter: int = 0, scheduled: int = 0) -> None:
        with self._lock:
            self._entities.queues[name.casefold()] = (name, Counts(active, dead_letter, scheduled))

    def set_subscription(self, topic: str, name: str, active: int, *, dead_letter: int = 0,
                         scheduled: int = 0) -> None:
        with self._lock:
            _, subscriptions = self._entities.topics.setdefault(topic.casefold(), (topic, {}))
            subscriptions[name.casefold()] = (name, Counts(active, dead_letter, scheduled))

    def clear(self) -> None:
        """Forget every entity and the request log."""
        with self._lock:
            self._entities = _Namespace()
            self._requests.clear()

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def clear_requests(self) -> None:
        with self._lock:
            self._requests.clear()

    def open_connections(self) -> int:
        """TCP connections the server holds open right now."""
        return self._call(self._count_connections)

    # -- lifecycle ---------------------------------------------------------------------------

    def __enter__(self) -> ServiceBusStandIn:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def start(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="servicebus-standin",
                                        daemon=True)
        self._thread.start()
        self.port = self._call(self._serve)

    def stop(self) -> None:
        if self._loop is None or self._thread is None:
            return
        self._call(self._shutdown)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()
        self._loop = self._thread = None

    def _call(self, make: Callable[[], Awaitable[T]]) -> T:
        if self._loop is None:
            raise RuntimeError("the Service Bus stand-in is not running")

        async def run() -> T:
            return await make()

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout=10)

    async def _serve(self) -> int:
        app = web.Application(middlewares=[self._authenticate])
        app.router.add_get("/$Resources/queues", self._list_queues)
        app.router.add_get("/{topic}/{kind:[Ss]ubscriptions}", self._list_subscriptions)
        app.router.add_get("/{topic}/{kind:[Ss]ubscriptions}/{name}", self._get_subscription)
        app.router.add_get("/{name}", self._get_entity)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self._ssl_context())
        await site.start()
        return int(self._runner.addresses[0][1])

    async def _shutdown(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _count_connections(self) -> int:
        server = self._runner.server if self._runner is not None else None
        return len(server.connections) if server is not None else 0

    def _ssl_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        with tempfile.TemporaryDirectory() as tmp:
            cert, key = Path(tmp) / "tls.crt", Path(tmp) / "tls.key"
            self._server_pair.write(cert, key)
            context.load_cert_chain(cert, key)
        return context

    # -- authentication ------------------------------------------------------------------------

    @web.middleware
    async def _authenticate(self, request: web.Request,
                            handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                            ) -> web.StreamResponse:
        problem = self._sas_problem(request)
        response = _error(401, problem, request) if problem else await handler(request)
        with self._lock:
            self._requests.append(RecordedRequest(request.method, request.path,
                                                  dict(request.query), response.status))
        return response

    def _sas_problem(self, request: web.Request) -> str | None:
        """Why the request's SAS token is refused (Azure's wording), or None when it is good."""
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme != "SharedAccessSignature" or not token:
            return "MissingToken: The authorization header was not found."
        fields = {name: values[0] for name, values in parse_qs(token).items()}
        audience, signature = fields.get("sr", ""), fields.get("sig", "")
        expiry, key_name = fields.get("se", ""), fields.get("skn", "")
        if not (audience and signature and expiry.isdigit()):
            return "InvalidToken: The token is malformed."
        if not hmac.compare_digest(key_name, self.key_name):
            return f"InvalidSignature: Unknown key name {key_name!r}."
        if not hmac.compare_digest(_sign(self.key, audience, expiry), signature):
            return "InvalidSignature: The token has an invalid signature."
        if int(expiry) < time.time():
            return "ExpiredToken: The token is expired."
        resource = f"//{request.host}{request.path}".lower()
        if not resource.startswith(audience.lower().split(":", 1)[-1].rstrip("/")):
            return "InvalidAudience: The token audience does not match the resource."
        return None

    # -- handlers ---------------------------------------------------------------------------------

    async def _get_entity(self, request: web.Request) -> web.Response:
        with self._lock:
            queue = self._entities.queues.get(request.match_info["name"].casefold())
            topic = self._entities.topics.get(request.match_info["name"].casefold())
        if queue is not None:
            return _xml(ENTRY_TYPE, self._entry(request, queue[0], queue[0], "QueueDescription", queue[1]))
        if topic is not None:
            return _xml(ENTRY_TYPE, self._entry(request, topic[0], topic[0], "TopicDescription", None))
        return _xml(FEED_TYPE, _empty_service_feed())

    async def _list_queues(self, request: web.Request) -> web.Response:
        with self._lock:
            queues = sorted(self._entities.queues.values())
        entries = [(name, name, counts) for name, counts in queues]
        return self._feed(request, "Queues", entries, "QueueDescription")

    async def _list_subscriptions(self, request: web.Request) -> web.Response:
        topic = self._topic(request)
        if topic is None:
            return _error(404, f"Entity '{request.match_info['topic']}' was not found.", request)
        name, subscriptions = topic
        entries = [(sub, f"{name}/Subscriptions/{sub}", counts)
                   for sub, counts in sorted(subscriptions.values())]
        return self._feed(request, "Subscriptions", entries, "SubscriptionDescription")

    async def _get_subscription(self, request: web.Request) -> web.Response:
        topic = self._topic(request)
        found = topic[1].get(request.match_info["name"].casefold()) if topic else None
        if topic is None or found is None:
            entity = f"{request.match_info['topic']}|{request.match_info['name']}"
            return _error(404, f"Entity '{entity}' was not found.", request)
        path = f"{topic[0]}/Subscriptions/{found[0]}"
        return _xml(ENTRY_TYPE, self._entry(request, found[0], path, "SubscriptionDescription", found[1]))

    def _topic(self, request: web.Request) -> tuple[str, dict[str, tuple[str, Counts]]] | None:
        with self._lock:
            topic = self._entities.topics.get(request.match_info["topic"].casefold())
            return (topic[0], dict(topic[1])) if topic else None

    # -- Atom XML -------------------------------------------------------------------------------------

    def _feed(self, request: web.Request, title: str, entries: Sequence[tuple[str, str, Counts]],
              description: str) -> web.Response:
        skip = int(request.query.get("$skip", "0"))
        top = int(request.query.get("$top", "100"))
        page = entries[skip:skip + top]
        base = f"https://{request.host}{quote(request.path)}"
        self_link = f"{base}?$skip={skip}&$top={top}&api-version={_api(request)}"
        links = [f'<link rel="self" href="{escape(self_link)}"/>']
        if skip + top < len(entries):
            next_link = f"{base}?%24skip={skip + top}&%24top={top}&api-version={_api(request)}"
            links.append(f'<link rel="next" href="{escape(next_link)}"/>')
        body = "".join(self._entry(request, name, path, description, counts, feed=self_link)
                       for name, path, counts in page)
        xml = (f'<feed xmlns="{ATOM}"><title type="text">{title}</title><id>{escape(self_link)}</id>'
               f"<updated>{_now()}</updated>{''.join(links)}{body}</feed>")
        return _xml(FEED_TYPE, xml)

    def _entry(self, request: web.Request, name: str, path: str, description: str,
               counts: Counts | None, *, feed: str | None = None) -> str:
        url = escape(f"https://{request.host}/{quote(path)}?api-version={_api(request)}")
        base = f' xml:base="{escape(feed)}"' if feed else ""
        xmlns = "" if feed else f' xmlns="{ATOM}"'
        return (f"<entry{xmlns}{base}><id>{url}</id><title type=\"text\">{escape(name)}</title>"
                f"<published>{_now()}</published><updated>{_now()}</updated>"
                f"<author><name>{escape(self.namespace)}</name></author>"
                f'<link rel="self" href="{url}"/><content type="application/xml">'
                f"{_description(description, counts)}</content></entry>")


def _sign(key: str, audience: str, expiry: str) -> str:
    """The SAS signature: HMAC-SHA256 with the key over the URL-encoded audience and the expiry."""
    digest = hmac.new(key.encode(), f"{quote_plus(audience)}\n{expiry}".encode(), hashlib.sha256)
    return base64.b64encode(digest.digest()).decode()


def _description(kind: str, counts: Counts | None) -> str:
    """A QueueDescription / SubscriptionDescription / TopicDescription with the fields that matter."""
    parts = ["<LockDuration>PT1M</LockDuration><MaxSizeInMegabytes>1024</MaxSizeInMegabytes>"]
    if counts is not None:
        parts.append(f"<SizeInBytes>{counts.total * 1024}</SizeInBytes>"
                     f"<MessageCount>{counts.total}</MessageCount>")
    parts.append(f"<Status>Active</Status><CreatedAt>{_now()}</CreatedAt><UpdatedAt>{_now()}</UpdatedAt>"
                 "<AccessedAt>0001-01-01T00:00:00Z</AccessedAt>")
    if counts is not None:
        parts.append(
            f'<CountDetails xmlns:d2p1="{SB_COUNTS}">'
            f"<d2p1:ActiveMessageCount>{counts.active}</d2p1:ActiveMessageCount>"
            f"<d2p1:DeadLetterMessageCount>{counts.dead_letter}</d2p1:DeadLetterMessageCount>"
            f"<d2p1:ScheduledMessageCount>{counts.scheduled}</d2p1:ScheduledMessageCount>"
            "<d2p1:TransferMessageCount>0</d2p1:TransferMessageCount>"
            "<d2p1:TransferDeadLetterMessageCount>0</d2p1:TransferDeadLetterMessageCount>"
            "</CountDetails>")
    parts.append("<EntityAvailabilityStatus>Available</EntityAvailabilityStatus>")
    return f'<{kind} xmlns="{SB}" xmlns:i="{XSI}">{"".join(parts)}</{kind}>'


def _empty_service_feed() -> str:
    return (f'<feed xmlns="{ATOM}"><title type="text">Publicly Listed Services</title>'
            '<subtitle type="text">This is the list of publicly-listed services currently available.'
            f"</subtitle><id>uuid:{uuid.uuid4()};id=1</id><updated>{_now()}</updated>"
            "<generator>Service Bus 1.1</generator></feed>")


def _error(status: int, detail: str, request: web.Request) -> web.Response:
    body = (f"<Error><Code>{status}</Code><Detail>{escape(detail)} TrackingId:{uuid.uuid4()}, "
            f"SystemTracker:{escape(request.host)}:{escape(request.path.lstrip('/'))}, "
            f"Timestamp:{_now()}</Detail></Error>")
    return web.Response(status=status, body=body.encode(), content_type="application/xml", charset="utf-8")


def _xml(content_type: str, body: str) -> web.Response:
    return web.Response(status=200, body=body.encode(), headers={"Content-Type": content_type})


def _api(request: web.Request) -> str:
    return request.query.get("api-version", "2021-05")


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

