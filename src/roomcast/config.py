"""Settings: one object, read from `ROOMCAST_*` variables or given explicitly.

Lists arrive as comma-separated strings (that is what operators write in an
environment file), so they are kept as strings and split by properties.
"""

from __future__ import annotations

import os
import secrets
import socket
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_instance_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


def _split(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ROOMCAST_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    redis_url: str = ""
    redis_sentinels: str = ""
    redis_sentinel_master: str = "mymaster"
    jwt_secret: SecretStr | None = None
    jwt_public_key: SecretStr | None = None
    jwt_audience: str = ""
    jwt_issuer: str = ""
    jwt_leeway_seconds: float = Field(0, ge=0)
    api_keys: SecretStr = SecretStr("")
    instance_id: str = Field(default_factory=_default_instance_id)
    rate_limit_per_second: float = Field(100, gt=0)
    rate_limit_burst: int = Field(200, ge=1)
    max_connections_per_user: int = Field(20, ge=1)
    max_connections: int = Field(50000, ge=1)
    max_rooms_per_connection: int = Field(100, ge=1)
    max_payload_bytes: int = Field(65536, ge=256)
    connect_rate_per_address: float = Field(20, ge=0)
    trusted_proxies: str = ""
    history_size: int = Field(1000, ge=1)
    history_ttl_seconds: int = Field(86400, ge=1)
    cors_origins: str = ""
    key_prefix: str = "roomcast"
    log_format: Literal["json", "console"] = "json"
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    # Beyond SPEC section 8: tuning knobs with safe defaults.
    send_queue_limit: int = Field(1000, ge=8, description="packets queued per connection")
    send_buffer_limit_bytes: int = Field(
        1 << 20,
        ge=1024,
        description="bytes a WebSocket connection may leave unsent before it is a slow consumer",
    )
    rate_abuse_seconds: float = Field(
        10, gt=0, description="seconds of continuous rate limiting before a disconnect"
    )
    lease_ttl_ms: int = Field(30000, ge=100)
    lease_max_ttl_ms: int = Field(300000, ge=100)
    idempotency_ttl_seconds: int = Field(600, ge=1)
    client_publishable_types: str = "annotation_update"
    drain_batch_size: int = Field(500, ge=1)
    ws_per_message_deflate: bool = Field(
        False,
        description="compress WebSocket messages (costs CPU per recipient on every broadcast)",
    )
    instance_dead_after_seconds: float = Field(
        10.0, gt=0, description="seconds without a heartbeat before an instance is reaped"
    )

    @field_validator("log_format", "log_level", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _check_leases(self) -> Settings:
        if self.lease_ttl_ms > self.lease_max_ttl_ms:
            raise ValueError("lease_ttl_ms must not exceed lease_max_ttl_ms")
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
    def client_publishable(self) -> frozenset[str]:
        return frozenset(_split(self.client_publishable_types))

    @property
    def uses_redis(self) -> bool:
        return bool(self.redis_url or self.redis_sentinels)

    def missing_for_serving(self) -> list[str]:
        """Names of variables that must be set before a non-demo server may start."""
        missing = []
        if self.jwt_secret is None and self.jwt_public_key is None:
            missing.append("ROOMCAST_JWT_SECRET (or ROOMCAST_JWT_PUBLIC_KEY)")
        if not self.api_key_list:
            missing.append("ROOMCAST_API_KEYS")
        return missing
