"""KeyRecord: what the swarm keeps of an API key created at run time, and the checks its settings pass."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime

from swarm.shared.errors import ErrorCode, SwarmError

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
PRIORITY_NAMES = {"interactive": 0, "batch": 1}
MAX_PRIORITY = 99
MAX_PER_MINUTE = 10**9


@dataclass(frozen=True)
class KeyRecord:
    """One key's settings; the secret itself is never kept, only its digest (the Redis key it lives under)."""

    name: str
    models: tuple[str, ...] = ()  # empty: every model
    expires_ms: int = 0  # unix ms; 0: never
    tokens_per_minute: int = 0  # 0: no limit
    requests_per_minute: int = 0
    max_streams: int = 0
    priority: int = 0  # 0 interactive, 1 batch, or the operator's number
    weight: float = 1.0
    admin: bool = False
    revoked: bool = False
    created_ms: int = 0

    @property
    def limited(self) -> bool:
        return bool(self.tokens_per_minute or self.requests_per_minute or self.max_streams)

    def expired(self, now_ms: int) -> bool:
        return 0 < self.expires_ms <= now_ms

    def allows_model(self, model: str) -> bool:
        return not self.models or model in self.models

    def to_hash(self) -> dict[str, str]:
        return {
            "name": self.name,
            "models": ",".join(self.models),
            "expires_ms": str(self.expires_ms),
            "tokens_per_minute": str(self.tokens_per_minute),
            "requests_per_minute": str(self.requests_per_minute),
            "max_streams": str(self.max_streams),
            "priority": str(self.priority),
            "weight": repr(self.weight),
            "admin": "1" if self.admin else "0",
            "revoked": "1" if self.revoked else "0",
            "created_ms": str(self.created_ms),
        }

    @classmethod
    def from_hash(cls, data: dict[str, str]) -> KeyRecord:
        return cls(
            name=data["name"],
            models=tuple(m for m in data.get("models", "").split(",") if m),
            expires_ms=int(data.get("expires_ms", 0)),
            tokens_per_minute=int(data.get("tokens_per_minute", 0)),
            requests_per_minute=int(data.get("requests_per_minute", 0)),
            max_streams=int(data.get("max_streams", 0)),
            priority=int(data.get("priority", 0)),
            weight=float(data.get("weight", 1.0)),
            admin=data.get("admin") == "1",
            revoked=data.get("revoked") == "1",
            created_ms=int(data.get("created_ms", 0)),
        )


def record_refusal(name: str, record: KeyRecord | None, now_ms: int) -> str:
    """Why the key named name, with this record (None: gone from Redis), lets nobody in now; "" if it does."""
    if record is None or record.revoked:
        return f"API key {name!r} was revoked"
    if record.expired(now_ms):
        when = datetime.fromtimestamp(record.expires_ms / 1000, UTC).isoformat(timespec="seconds")
        return f"API key {name!r} expired at {when}"
    return ""


@dataclass(frozen=True)
class KeySettings:
    """What `swarm keys create` asks for, as typed: checked by new_record, each problem naming its field."""

    name: str
    models: tuple[str, ...] = ()
    expires: str = ""  # ISO date or date-time; "": never
    tokens_per_minute: int = 0
    requests_per_minute: int = 0
    max_streams: int = 0
    priority: str = "interactive"
    weight: float = 1.0
    admin: bool = False


def _invalid(field_name: str, problem: str) -> SwarmError:
    return SwarmError(ErrorCode.INVALID_ARGUMENT, f"{field_name}: {problem}")


def parse_priority(text: str) -> int:
    """interactive -> 0, batch -> 1, or a number 0..MAX_PRIORITY (a larger number waits behind a smaller)."""
    value = text.strip().lower() or "interactive"
    if value in PRIORITY_NAMES:
        return PRIORITY_NAMES[value]
    if value.isdigit() and int(value) <= MAX_PRIORITY:
        return int(value)
    raise _invalid("priority", f"{text!r} is not interactive, batch or a number 0..{MAX_PRIORITY}")


def priority_name(priority: int) -> str:
    return next((name for name, number in PRIORITY_NAMES.items() if number == priority), str(priority))


def parse_expiry(text: str, now_ms: int) -> int:
    """Unix ms of an ISO date (its midnight UTC) or date-time (UTC unless it names a zone); 0 for ""."""
    text = text.strip()
    if not text:
        return 0
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise _invalid(
            "expires", f"{text!r} is not a date (YYYY-MM-DD) or date-time (YYYY-MM-DDTHH:MM[:SS][Z])"
        ) from None
    if len(text) == 10:  # a bare date
        moment = datetime.combine(date.fromisoformat(text), datetime.min.time())
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    expires_ms = int(moment.timestamp() * 1000)
    if expires_ms <= now_ms:
        raise _invalid("expires", f"{text!r} is in the past")
    return expires_ms


def new_record(settings: KeySettings, now_ms: int) -> KeyRecord:
    """The record of a key created now; INVALID_ARGUMENT naming the field for a bad setting."""
    if not NAME_PATTERN.match(settings.name):
        raise _invalid("name", f"{settings.name!r} must be 1-64 letters, digits, '.', '_' or '-', starting with one")
    for model in settings.models:
        if not model or "," in model or model != model.strip():
            raise _invalid("models", f"{model!r} is not a model name")
    for name in ("tokens_per_minute", "requests_per_minute", "max_streams"):
        value = getattr(settings, name)
        if not 0 <= value <= MAX_PER_MINUTE:
            raise _invalid(name, f"must be 0 (no limit) .. {MAX_PER_MINUTE}, got {value}")
    if not 0 < settings.weight <= 1000:
        raise _invalid("weight", f"must be > 0 and <= 1000, got {settings.weight}")
    return KeyRecord(
        name=settings.name,
        models=tuple(dict.fromkeys(settings.models)),
        expires_ms=parse_expiry(settings.expires, now_ms),
        tokens_per_minute=settings.tokens_per_minute,
        requests_per_minute=settings.requests_per_minute,
        max_streams=settings.max_streams,
        priority=parse_priority(settings.priority),
        weight=settings.weight,
        admin=settings.admin,
        created_ms=now_ms,
    )
