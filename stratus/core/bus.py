"""The message bus: RPC (cast, call, fanout) and notifications over kombu.

`memory://` keeps every message inside the process (`stratus up`); `amqp://` goes through RabbitMQ.
The code is the same for both. With a Bus built on exchange name `ex`, the broker holds:

- exchange `ex` (direct): key `topic` feeds the shared queue `ex.topic` (one server of the topic
  takes each message), key `topic.host` the queue `ex.topic.host`, and key `notifications.info` a
  private queue per notification listener;
- exchange `ex.fanout` (direct): key `topic` feeds a private queue per server of the topic, so each
  of them gets a copy;
- a private reply queue per Bus, fed through the default exchange, where answers to `call` arrive
  tagged with the request's correlation id.

Kombu connections are not thread-safe: every consumer (server, reply listener, notification
listener) owns a connection and a thread, and publishing goes through one connection under a lock.
Bodies are JSON.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from datetime import UTC, datetime
from queue import Empty
from time import monotonic
from typing import Any

from kombu import Connection, Exchange, Producer, Queue
from kombu.exceptions import EncodeError, OperationalError
from kombu.mixins import ConsumerMixin
from kombu.transport import memory
from kombu.utils.url import maybe_sanitize_url

from stratus.core.errors import BusTimeout, RemoteError, ServiceUnavailable, StratusError

log = logging.getLogger("stratus.bus")

NOTIFICATION_TOPIC = "notifications.info"
# How often a consumer thread looks up from the broker to notice it was asked to stop.
_STOP_CHECK = 0.1
# The in-process transport wakes a stopping consumer at once, so its consumers look up only this
# rarely: with hundreds of them (simulated hosts) a 0.1 s poll each cost ~12% of a core when idle.
_MEMORY_STOP_CHECK = 5.0
# Handlers run in a pool so a slow one (or one that calls back into its own topic) blocks no other;
# a server whose handlers mostly wait (a conductor waiting on agents) asks for more.
_SERVER_WORKERS = 8
# How hard a publisher tries to reach the broker before giving up (a few seconds at most).
_RETRY = {"max_retries": 3, "interval_start": 0.2, "interval_step": 0.5, "interval_max": 1.0}
# A shared queue nobody consumed for this long is removed by RabbitMQ, with what it held.
_IDLE_QUEUE_EXPIRY = 3600.0
# Replies go straight to the caller's queue, by its name.
_DEFAULT_EXCHANGE = Exchange("")


class UnknownMethod(Exception):
    """Raised at the server (and seen as `RemoteError("UnknownMethod", ...)` by the caller) when a
    message names a method the endpoint does not offer."""


class Bus:
    def __init__(self, url: str = "memory://", *, default_timeout: float = 60.0,
                 exchange: str = "stratus") -> None:
        self.url = url
        self.default_timeout = default_timeout
        self._exchange = Exchange(exchange, "direct", durable=False)
        self._fanout = Exchange(f"{exchange}.fanout", "direct", durable=False)
        self._publishing = threading.Lock()  # one producer shared by all threads
        self._producer: Producer | None = None
        self._starting_replies = threading.Lock()
        self._replies: _Consumer | None = None
        self._reply_queue = Queue(f"{exchange}.reply.{uuid.uuid4().hex}", exclusive=True, auto_delete=True)
        self._pending: dict[str, Future[dict[str, Any]]] = {}
        # In the order they started: `close` stops the ones that started first first (a conductor
        # before the agents its running handlers still call).
        self._running: dict[RpcServer | NotificationListener, None] = {}

    # -- sending -------------------------------------------------------------------------------

    def cast(self, topic: str, method: str, **kwargs: Any) -> None:
        """Ask one server of `topic` (or `topic.host`) to run `method`; no answer comes back."""
        self._publish(self._exchange, topic, {"method": method, "args": kwargs})

    def call(self, topic: str, method: str, timeout: float | None = None, **kwargs: Any) -> Any:
        """Run `method` on one server of `topic` and return its result, or raise what it raised."""
        timeout = self.default_timeout if timeout is None else timeout
        self._start_replies(timeout)
        correlation_id = uuid.uuid4().hex
        answer: Future[dict[str, Any]] = Future()
        self._pending[correlation_id] = answer
        try:
            # The expiration keeps a request nobody took in time from running later for nobody.
            self._publish(self._exchange, topic, {"method": method, "args": kwargs},
                          correlation_id=correlation_id, reply_to=self._reply_queue.name,
                          expiration=timeout)
            reply = answer.result(timeout)
        except FutureTimeout:
            raise BusTimeout(f"no answer to {topic}.{method} within {timeout:g} s") from None
        finally:
            self._pending.pop(correlation_id, None)
        if "error" in reply:
            raise _rebuild_error(reply["error"])
        return reply.get("result")

    def fanout(self, topic: str, method: str, **kwargs: Any) -> None:
        """Ask every server of `topic` to run `method`; no answer comes back."""
        self._publish(self._fanout, topic, {"method": method, "args": kwargs})

    def notify(self, event_type: str, payload: dict[str, Any], *, publisher_id: str = "stratus") -> None:
        """Tell whoever listens that `event_type` happened (the shape OpenStack notifications have)."""
        body = {"message_id": uuid.uuid4().hex, "event_type": event_type, "payload": payload,
                "publisher_id": publisher_id, "priority": "INFO",
                "timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")}
        self._publish(self._exchange, NOTIFICATION_TOPIC, body)

    # -- receiving -----------------------------------------------------------------------------

    def serve(self, topic: str, endpoint: object, host: str | None = None,
              workers: int = _SERVER_WORKERS) -> RpcServer:
        """Run `endpoint`'s public methods for messages to `topic`, `topic.host` and the topic's
        fanout, in up to `workers` background threads, until `.stop()`. Returns once the queues
        are consumed."""
        return RpcServer(self, topic, endpoint, host, workers)

    def listen_notifications(self, callback: Callable[[dict[str, Any]], None],
                             event_types: Iterable[str] | None = None) -> NotificationListener:
        """Call `callback(notification)` for every notification (of `event_types`, when given)
        sent from now on, in a background thread, until `.stop()`."""
        return NotificationListener(self, callback, event_types)

    def close(self) -> None:
        """Stop every server and listener of this Bus and drop its connections."""
        for running in list(self._running):
            running.stop()
        with self._starting_replies:
            if self._replies is not None:
                self._replies.stop()
                self._replies = None
        with self._publishing:
            if self._producer is not None:
                self._producer.connection.release()
                self._producer = None

    # -- plumbing ------------------------------------------------------------------------------

    def _connection(self) -> Connection:
        in_process = self.url.startswith("memory:")
        return Connection(self.url, transport=_MemoryTransport if in_process else None)

    def _publish(self, exchange: Exchange, routing_key: str, body: dict[str, Any], **properties: Any) -> None:
        declare = [exchange] if exchange.name else []
        try:
            with self._publishing:
                if self._producer is None:
                    connection = self._connection()
                    connection.ensure_connection(**_RETRY)
                    self._producer = Producer(connection, serializer="json")
                self._producer.publish(body, exchange=exchange, routing_key=routing_key, declare=declare,
                                       retry=True, retry_policy=_RETRY, **properties)
        except (OperationalError, ConnectionError) as exc:
            raise ServiceUnavailable(f"message bus {self._safe_url()} unreachable: {exc}") from exc

    def _reply(self, reply_to: str, correlation_id: str, reply: dict[str, Any]) -> None:
        try:
            self._publish(_DEFAULT_EXCHANGE, reply_to, reply, correlation_id=correlation_id)
        except EncodeError as exc:  # the result is not JSON: the caller learns why instead of waiting
            error = {"type": "EncodeError", "module": "", "message": f"result is not JSON: {exc}"}
            self._publish(_DEFAULT_EXCHANGE, reply_to, {"error": error}, correlation_id=correlation_id)

    def _start_replies(self, timeout: float) -> None:
        with self._starting_replies:
            if self._replies is not None:
                return
            replies = _Consumer(self, "replies", [self._reply_queue], self._on_reply,
                                private=[self._reply_queue])
            if not replies.start(timeout):
                raise BusTimeout(f"message bus {self._safe_url()} not reachable within {timeout:g} s")
            self._replies = replies

    def _on_reply(self, body: Any, properties: dict[str, Any]) -> None:
        waiter = self._pending.pop(properties.get("correlation_id", ""), None)
        if waiter is not None:  # None: the caller gave up already
            waiter.set_result(body)

    def _safe_url(self) -> str:
        return maybe_sanitize_url(self.url)  # without the password


class RpcServer:
    """Runs an endpoint's methods for the messages of one topic; see `Bus.serve`."""

    def __init__(self, bus: Bus, topic: str, endpoint: object, host: str | None = None,
                 workers: int = _SERVER_WORKERS) -> None:
        self.topic, self.host = topic, host
        self._bus, self._endpoint = bus, endpoint
        prefix = bus._exchange.name
        queues = [Queue(f"{prefix}.{topic}", bus._exchange, routing_key=topic, durable=False,
                        expires=_IDLE_QUEUE_EXPIRY)]
        if host is not None:
            queues.append(Queue(f"{prefix}.{topic}.{host}", bus._exchange, routing_key=f"{topic}.{host}",
                                durable=False, expires=_IDLE_QUEUE_EXPIRY))
        fanout = Queue(f"{prefix}.{topic}.fanout.{uuid.uuid4().hex}", bus._fanout, routing_key=topic,
                       exclusive=True, auto_delete=True)
        queues.append(fanout)
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix=f"bus-{topic}")
        self._consumer = _Consumer(bus, f"server {topic}", queues, self._on_message, private=[fanout])
        if not self._consumer.start(bus.default_timeout):
            self._pool.shutdown()
            raise ServiceUnavailable(f"message bus {bus._safe_url()} unreachable: cannot serve {topic}")
        bus._running[self] = None

    def stop(self) -> None:
        """Stop taking messages, then let the handlers already running finish."""
        self._bus._running.pop(self, None)
        self._consumer.stop()
        self._pool.shutdown()

    def _on_message(self, body: Any, properties: dict[str, Any]) -> None:
        self._pool.submit(self._dispatch, body, properties.get("reply_to"), properties.get("correlation_id"))

    def _dispatch(self, body: Any, reply_to: str | None, correlation_id: str | None) -> None:
        try:
            reply = {"result": self._invoke(body)}
        except Exception as exc:
            if isinstance(exc, StratusError | UnknownMethod):  # expected: the caller hears of it
                log.debug("%s: %s: %s", self.topic, type(exc).__name__, exc)
            else:
                log.exception("%s: handler failed on %.200r", self.topic, body)
            reply = {"error": _encode_error(exc)}
        if reply_to and correlation_id:
            self._bus._reply(reply_to, correlation_id, reply)

    def _invoke(self, body: Any) -> Any:
        method, args = body["method"], body.get("args") or {}
        # Only public methods are reachable: the bus is not a way into an endpoint's internals.
        handler = None if method.startswith("_") else getattr(self._endpoint, method, None)
        if not callable(handler):
            raise UnknownMethod(f"{type(self._endpoint).__name__} has no method {method!r}")
        return handler(**args)


class NotificationListener:
    """Hands notifications to a callback; see `Bus.listen_notifications`."""

    def __init__(self, bus: Bus, callback: Callable[[dict[str, Any]], None],
                 event_types: Iterable[str] | None = None) -> None:
        self._callback = callback
        self._event_types = None if event_types is None else frozenset(event_types)
        queue = Queue(f"{bus._exchange.name}.{NOTIFICATION_TOPIC}.{uuid.uuid4().hex}", bus._exchange,
                      routing_key=NOTIFICATION_TOPIC, exclusive=True, auto_delete=True)
        self._bus = bus
        self._consumer = _Consumer(bus, "notifications", [queue], self._on_message, private=[queue])
        if not self._consumer.start(bus.default_timeout):
            raise ServiceUnavailable(f"message bus {bus._safe_url()} unreachable: cannot listen")
        bus._running[self] = None

    def stop(self) -> None:
        self._bus._running.pop(self, None)
        self._consumer.stop()

    def _on_message(self, body: Any, properties: dict[str, Any]) -> None:
        if self._event_types is not None and body.get("event_type") not in self._event_types:
            return
        try:
            self._callback(body)
        except Exception:
            log.exception("notification callback failed on %s", body.get("event_type"))


class _Consumer(ConsumerMixin):
    """Consumes some queues on a thread and a connection of its own; reconnects when the broker
    goes away. `private` queues belong to this consumer alone and are deleted when it stops."""

    def __init__(self, bus: Bus, name: str, queues: list[Queue],
                 on_message: Callable[[Any, dict[str, Any]], None], *, private: list[Queue]) -> None:
        self.connection = bus._connection()
        self._queues, self._on_message, self._private = queues, on_message, private
        self._ready = threading.Event()
        self._in_process = bus.url.startswith("memory:")
        self._live: Connection | None = None  # the connection consuming (kombu's clone of ours)
        self._thread = threading.Thread(target=self._run, name=f"bus {name}", daemon=True)

    def start(self, timeout: float) -> bool:
        """Start consuming; False (and stopped) if the queues were not consumed within `timeout`."""
        self._thread.start()
        if self._ready.wait(timeout):
            return True
        self.stop()
        return False

    def stop(self) -> None:
        self.should_stop = True
        live = self._live
        if live is not None and isinstance(live.transport, _MemoryTransport):
            live.transport.interrupt()
        if self._thread is not threading.current_thread() and self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        try:
            self.run(safety_interval=_MEMORY_STOP_CHECK if self._in_process else _STOP_CHECK)
        except Exception:
            if not self.should_stop:
                log.exception("%s stopped on an error", self._thread.name)
        finally:
            self.connection.release()

    def get_consumers(self, Consumer: Any, channel: Any) -> list[Any]:  # noqa: N803 (kombu's name)
        return [Consumer(queues=self._queues, callbacks=[self._receive], accept=["json"])]

    def on_consume_ready(self, connection: Any, channel: Any, consumers: Any, **kwargs: Any) -> None:
        self._live = connection
        self._ready.set()

    def on_consume_end(self, connection: Any, channel: Any) -> None:
        # RabbitMQ drops exclusive queues with their connection; the memory transport never does,
        # and keeps routing to a bound queue even once deleted, so unbind and delete explicitly.
        for queue in self._private:
            bound = queue.bind(channel)
            if queue.exchange.name:
                bound.queue_unbind()
            bound.delete()

    def on_connection_error(self, exc: Exception, interval: float) -> None:
        if self.should_stop:
            raise exc  # ends the reconnection loop
        log.warning("%s: broker unreachable (%s), retrying in %.1f s", self._thread.name, exc, interval)

    def _receive(self, body: Any, message: Any) -> None:
        # Acked on receipt: a message is handled at most once, even if this process dies on it.
        message.ack()
        try:
            self._on_message(body, message.properties)
        except Exception:
            log.exception("%s dropped a message", self._thread.name)


class _Arrivals:
    """Counts the messages put on the queues one memory-transport connection consumes, so its
    consumer can sleep until one of them gets a message (and not wake for anyone else's)."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self.count = 0

    def signal(self) -> None:
        with self._changed:
            self.count += 1
            self._changed.notify_all()

    def wait(self, seen: int, timeout: float | None) -> None:
        with self._changed:
            self._changed.wait_for(lambda: self.count != seen, timeout)


class _Listeners:
    """Which connections consume each memory queue. Waking only those matters at scale: with one
    shared wake-up, every message woke every consumer of the process (hundreds of simulated
    hosts), and each of them polled its queues under the GIL."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_queue: dict[str, dict[_Arrivals, int]] = {}

    def add(self, queue: str, arrivals: _Arrivals) -> None:
        with self._lock:
            counts = self._by_queue.setdefault(queue, {})
            counts[arrivals] = counts.get(arrivals, 0) + 1

    def remove(self, queue: str, arrivals: _Arrivals) -> None:
        with self._lock:
            counts = self._by_queue.get(queue, {})
            if counts.get(arrivals, 0) > 1:
                counts[arrivals] -= 1
            else:
                counts.pop(arrivals, None)
                if not counts:
                    self._by_queue.pop(queue, None)

    def wake(self, queue: str) -> None:
        with self._lock:
            waiting = list(self._by_queue.get(queue, ()))
        for arrivals in waiting:
            arrivals.signal()


_LISTENERS = _Listeners()
_DECLARING = threading.Lock()


class _MemoryChannel(memory.Channel):
    connection: _MemoryTransport

    def exchange_declare(self, *args: Any, **kwargs: Any) -> None:
        # kombu looks the exchange up, then creates it: two threads doing that at once would lose
        # the bindings made in between.
        with _DECLARING:
            super().exchange_declare(*args, **kwargs)

    def basic_consume(self, queue: str, *args: Any, **kwargs: Any) -> Any:
        result = super().basic_consume(queue, *args, **kwargs)
        _LISTENERS.add(queue, self.connection.arrivals)
        return result

    def basic_cancel(self, consumer_tag: str) -> Any:
        queue = self._tag_to_queue.get(consumer_tag) if consumer_tag in self._consumers else None
        result = super().basic_cancel(consumer_tag)
        if queue is not None:
            _LISTENERS.remove(queue, self.connection.arrivals)
        return result

    def _put(self, queue: str, message: Any, **kwargs: Any) -> None:
        super()._put(queue, message, **kwargs)
        _LISTENERS.wake(queue)

    def _put_fanout(self, exchange: str, message: Any, routing_key: str | None = None, **kwargs: Any) -> None:
        for queue in self._lookup(exchange, routing_key):
            self._put(queue, message)


class _MemoryTransport(memory.Transport):
    """kombu's in-process transport without its polling loop. kombu's version sleeps a fixed
    interval whenever its queues are empty: 1 s by default, so each call took a second, and a short
    interval costs CPU in every idle consumer. This one sleeps until a message is put on one of the
    queues this connection consumes."""

    Channel = _MemoryChannel
    cycle: Any  # kombu's FairCycle over the channels, set up by kombu

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.arrivals = _Arrivals()
        self._interrupted = False

    def interrupt(self) -> None:
        """Its consumer is stopping: `drain_events` returns (as timed out) now and from now on
        whenever nothing is waiting, instead of sleeping."""
        self._interrupted = True
        self.arrivals.signal()

    def drain_events(self, connection: Any, timeout: float | None = None, **kwargs: Any) -> None:
        deadline = None if timeout is None else monotonic() + timeout
        while True:
            seen = self.arrivals.count  # read before looking, so a message put meanwhile is not slept through
            try:
                return self.cycle.get(self._deliver, timeout=timeout)
            except Empty:
                remaining = None if deadline is None else deadline - monotonic()
                if self._interrupted or (remaining is not None and remaining <= 0):
                    raise TimeoutError() from None  # what kombu callers expect (socket.timeout)
                self.arrivals.wait(seen, remaining)


def _encode_error(exc: Exception) -> dict[str, str]:
    if isinstance(exc, RemoteError):  # passed along as it came, not wrapped once more
        return {"type": exc.exc_type, "module": "", "message": exc.remote_message}
    message = exc.message if isinstance(exc, StratusError) else str(exc)
    return {"type": type(exc).__name__, "module": type(exc).__module__, "message": message}


def _rebuild_error(error: dict[str, str]) -> Exception:
    """The caller's copy of the callee's exception: the same StratusError, or a RemoteError."""
    name, message = error["type"], error["message"]
    cls = _stratus_errors().get((error["module"], name))
    if cls is not None:
        try:
            return cls(message)
        except TypeError:  # a subclass whose constructor wants more than a message
            pass
    return RemoteError(name, message)


def _stratus_errors() -> dict[tuple[str, str], type[StratusError]]:
    found: dict[tuple[str, str], type[StratusError]] = {}
    todo = [StratusError]
    while todo:
        cls = todo.pop()
        found[(cls.__module__, cls.__name__)] = cls
        todo.extend(cls.__subclasses__())
    return found
