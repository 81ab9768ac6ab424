"""Settings: one object, read from `ROOMCAST_*` variables or given explicitly.

Lists arrive as comma-separated strings (that is what operators write in an
environment file), so they are kept as strings and split by properties. Every field
carries a description: `roomcast serve --help` prints it beside the default.
"""

from __future__ import annotations

import os
import secrets
import socket
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

MIN_SECRET_BYTES = 32
MAKE_A_SECRET = "python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"


def _default_instance_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


def _split(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ROOMCAST_", extra="ignore")

    host: str = Field("127.0.0.1", description="address to listen on")
    port: int = Field(8000, ge=0, le=65535, description="port to listen on")
    redis_url: str = Field(
        "", description="redis:// or rediss:// URL of a standalone Redis; empty: in memory"
    )
    redis_sentinels: str = Field(
        "", description="host:port,host:port of Redis Sentinels (Sentinel mode)"
    )
    redis_cluster_nodes: str = Field(
        "",
        description=(
            "host:port,host:port of Redis Cluster nodes (cluster mode: any few of them;"
            " the rest are discovered); redis_password and redis_tls apply"
        ),
    )
    redis_sentinel_master: str = Field(
        "mymaster", description="the master's name, as the sentinels know it"
    )
    redis_sentinel_password: SecretStr | None = Field(
        None, description="Sentinel mode: the sentinels' own password"
    )
    redis_password: SecretStr | None = Field(
        None,
        description=(
            "the password of the master and its replicas (Sentinel mode),"
            " or of a redis_url that has none"
        ),
    )
    redis_tls: bool = Field(
        False,
        description="TLS to the sentinels and master; with redis_url, turns redis:// into rediss://",
    )
    redis_db: int = Field(
        0,
        ge=0,
        description="the database number (Sentinel mode, or of a redis_url that names none)",
    )
    redis_timeout_ms: int = Field(
        1000,
        ge=10,
        description=(
            "the longest a publish, a /readyz check or another broker call waits on Redis"
            " (connecting, a free pooled connection and the reply included)"
        ),
    )
    redis_max_connections: int = Field(
        100,
        ge=1,
        description="pooled connections to Redis per process; past them a call waits for one",
    )
    jwt_secret: SecretStr | None = Field(
        None, description=f"HS256 secret of access tokens, at least {MIN_SECRET_BYTES} bytes"
    )
    jwt_public_key: SecretStr | None = Field(
        None, description="PEM public key of RS256/ES256 access tokens"
    )
    jwt_audience: str = Field("", description="required `aud` of tokens; empty: not checked")
    jwt_issuer: str = Field("", description="required `iss` of tokens; empty: not checked")
    jwt_leeway_seconds: float = Field(0, ge=0, description="clock leeway for `exp`, in seconds")
    jwt_jwks_url: str = Field(
        "", description="JWKS document of RS256/ES256/EdDSA keys chosen by kid; empty: none"
    )
    jwt_secrets: SecretStr | None = Field(
        None, description="several comma-separated HS256 secrets, any of which verifies"
    )
    jwt_unknown_kid_wait_ms: int = Field(
        2000,
        ge=0,
        description="how long a connect with an unknown kid awaits the JWKS fetch it triggers",
    )
    jwt_user_claim: str = Field("sub", description="claim (dotted path) holding the user id")
    jwt_roles_claim: str = Field("roles", description="claim (dotted path) holding the roles")
    jwt_projects_claim: str = Field(
        "projects", description="claim (dotted path) holding the project ids"
    )
    proxy_join_url: str = Field(
        "", description="the platform's join proxy, asked when no built-in rule admits"
    )
    proxy_publish_url: str = Field(
        "", description="the platform's publish proxy, asked before a client event is sequenced"
    )
    proxy_timeout_ms: int = Field(2000, ge=1, description="how long a proxy may take to answer")
    proxy_max_concurrent: int = Field(
        64, ge=1, description="calls in flight per proxy and instance; past them a call waits"
    )
    proxy_breaker_failures: int = Field(
        5, ge=1, description="consecutive proxy failures that open its circuit breaker"
    )
    proxy_breaker_cooldown_ms: int = Field(
        5000, ge=1, description="how long an open proxy breaker refuses at once, then one trial"
    )
    proxy_secret: SecretStr | None = Field(
        None, description="HMAC secret signing proxy requests (X-Roomcast-Signature)"
    )
    webhook_url: str = Field("", description="where webhook batches are POSTed; empty: none")
    webhook_secret: SecretStr | None = Field(
        None, description="HMAC secret signing webhook batches (X-Roomcast-Signature)"
    )
    webhook_events: str = Field(
        "client_event,presence,room", description="comma-separated webhook event kinds"
    )
    webhook_batch_size: int = Field(100, ge=1, description="webhook events per POST at most")
    webhook_lease_ms: int = Field(
        5000,
        ge=100,
        description="how long an instance holds the delivery lease; another takes over after it",
    )
    webhook_timeout_ms: int = Field(
        4000, ge=1, description="how long a webhook POST may take before it is retried"
    )
    webhook_journal_max: int = Field(
        100_000,
        ge=1,
        description="webhook events kept for a receiver that is down; older: dead letters",
    )
    api_keys: SecretStr = Field(
        SecretStr(""), description="comma-separated keys of the HTTP API (Bearer)"
    )
    instance_id: str = Field(
        default_factory=_default_instance_id,
        description="this instance's name (default: host-pid-random)",
    )
    rate_limit_per_second: float = Field(
        100, gt=0, description="client events per second, per connection"
    )
    rate_limit_burst: int = Field(200, ge=1, description="client events in a burst, per connection")
    max_connections_per_user: int = Field(
        20, ge=1, description="connections of one user, over all instances"
    )
    max_connections: int = Field(50000, ge=1, description="connections of this instance")
    max_rooms_per_connection: int = Field(
        100, ge=1, description="rooms one connection may join (its user_ room aside)"
    )
    max_payload_bytes: int = Field(
        65536, ge=256, description="bytes of one client event's JSON and of an HTTP publish body"
    )
    connect_rate_per_address: float = Field(
        20, ge=0, description="connection attempts per second per client address; 0: off"
    )
    trusted_proxies: str = Field(
        "", description="load balancers whose X-Forwarded-For gives the client address"
    )
    history_size: int = Field(1000, ge=1, description="events kept per room")
    history_ttl_seconds: int = Field(
        86400, ge=1, description="seconds a room's history is kept after its last event"
    )
    cors_origins: str = Field(
        "", description="comma-separated allowed origins, or *; empty: same origin only"
    )
    key_prefix: str = Field("roomcast", description="namespace of every Redis key and channel")
    log_format: Literal["json", "console"] = Field("json", description="json or console")
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="debug, info, warning or error"
    )

    # Beyond SPEC section 8: tuning knobs with safe defaults.
    send_queue_limit: int = Field(
        1000, ge=8, description="packets queued per long-polling connection"
    )
    send_buffer_limit_bytes: int = Field(
        1 << 20,
        ge=1024,
        description="bytes a WebSocket connection may leave unsent before it is a slow consumer",
    )
    rate_abuse_seconds: float = Field(
        10, gt=0, description="seconds of continuous rate limiting before a disconnect"
    )
    lease_ttl_ms: int = Field(30000, ge=100, description="an editing lease's default lifetime")
    lease_max_ttl_ms: int = Field(300000, ge=100, description="the longest lease a client may ask")
    idempotency_ttl_seconds: int = Field(
        600, ge=1, description="how long a client_event_id or idempotency_key is remembered"
    )
    client_publishable_types: str = Field(
        "annotation_update", description="comma-separated event types clients may publish"
    )
    drain_batch_size: int = Field(
        500, ge=1, description="connections closed per step while draining"
    )
    ws_per_message_deflate: bool = Field(
        False,
        description="compress WebSocket messages (costs CPU per recipient on every broadcast)",
    )
    engine: Literal["native", "python-socketio"] = Field(
        "native",
        description=(
            "the Socket.IO server: roomcast's own engine (native: no task per "
            "connection) or python-socketio on python-engineio"
        ),
    )
    instance_dead_after_seconds: float = Field(
        10.0, gt=0, description="seconds without a heartbeat before an instance is reaped"
    )

    @field_validator("log_format", "log_level", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @field_validator("jwt_secret")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value().encode()) < MIN_SECRET_BYTES:
            raise ValueError(
                f"ROOMCAST_JWT_SECRET must be at least {MIN_SECRET_BYTES} bytes "
                f"(make one with: {MAKE_A_SECRET})"
            )
        return value

    @field_validator("jwt_secrets")
    @classmethod
    def _all_long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            for secret in _split(value.get_secret_value()):
                if len(secret.encode()) < MIN_SECRET_BYTES:
                    raise ValueError(
                        f"every secret of ROOMCAST_JWT_SECRETS must be at least "
                        f"{MIN_SECRET_BYTES} bytes (make one with: {MAKE_A_SECRET})"
                    )
        return value

    @property
    def jwt_secret_list(self) -> list[str]:
        """Every HS256 secret that verifies: jwt_secret first, then jwt_secrets."""
        listed = _split(self.jwt_secrets.get_secret_value()) if self.jwt_secrets else []
        first = [self.jwt_secret.get_secret_value()] if self.jwt_secret else []
        return first + [s for s in listed if s not in first]

    @property
    def webhook_event_kinds(self) -> frozenset[str]:
        return frozenset(_split(self.webhook_events))

    @model_validator(mode="after")
    def _check_leases(self) -> Settings:
        if self.lease_ttl_ms > self.lease_max_ttl_ms:
            raise ValueError("lease_ttl_ms must not exceed lease_max_ttl_ms")
        if self.webhook_url and self.webhook_secret is None:
            # An unsigned batch is one the platform cannot tell from a forgery.
            raise ValueError("ROOMCAST_WEBHOOK_SECRET is required with ROOMCAST_WEBHOOK_URL")
        if self.webhook_timeout_ms >= self.webhook_lease_ms:
            # A POST outliving the lease could overlap the next holder's: order breaks.
            raise ValueError("webhook_timeout_ms must be below webhook_lease_ms")
        return self

    @model_validator(mode="after")
    def _check_cluster(self) -> Settings:
        if not self.redis_cluster_nodes:
            return self
        if self.redis_url or self.redis_sentinels:
            raise ValueError(
                "ROOMCAST_REDIS_CLUSTER_NODES excludes ROOMCAST_REDIS_URL and"
                " ROOMCAST_REDIS_SENTINELS: set one Redis mode"
            )
        if self.redis_db:
            raise ValueError("a Redis Cluster has database 0 only: unset ROOMCAST_REDIS_DB")
        if self.webhook_url:
            # The journal is one stream for the deployment, outside every room's slot.
            raise ValueError("webhooks are not available with ROOMCAST_REDIS_CLUSTER_NODES yet")
        return self

    @property
    def api_key_list(self) -> list[str]:
        return _split(self.api_keys.get_secret_value())

    @property
    def cors_origin_list(self) -> list[str]:
        return _split(self.cors_origins)

    @property
    def trusted_proxy_list(self) -> list[str]:
        return _split(self.trusted_proxies)

    @property
    def sentinel_list(self) -> list[tuple[str, int]]:
        out: list[tuple[str, int]] = []
        for item in _split(self.redis_sentinels):
            host, _, port = item.rpartition(":")
            out.append((host.strip("[]"), int(port)))
        return out

    @property
    def cluster_node_list(self) -> list[tuple[str, int]]:
        out: list[tuple[str, int]] = []
        for item in _split(self.redis_cluster_nodes):
            host, _, port = item.rpartition(":")
            out.append((host.strip("[]"), int(port)))
        return out

    @property
    def client_publishable(self) -> frozenset[str]:
        return frozenset(_split(self.client_publishable_types))

    @property
    def uses_redis(self) -> bool:
        return bool(self.redis_url or self.redis_sentinels or self.redis_cluster_nodes)

    def missing_for_serving(self) -> list[str]:
        """Names of variables that must be set before a non-demo server may start."""
        missing = []
        if (
            self.jwt_secret is None
            and self.jwt_public_key is None
            and self.jwt_secrets is None
            and not self.jwt_jwks_url
        ):
            missing.append(
                "ROOMCAST_JWT_SECRET (or ROOMCAST_JWT_SECRETS, ROOMCAST_JWT_PUBLIC_KEY,"
                " ROOMCAST_JWT_JWKS_URL)"
            )
        if not self.api_key_list:
            missing.append("ROOMCAST_API_KEYS")
        return missing
