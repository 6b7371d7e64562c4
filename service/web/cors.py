"""Which web origins may call the API from a browser (CORS), and open its WebSocket.

`KAMENG_CORS_ORIGINS`: a comma-separated allow-list of exact origins
(`https://shop.example.com`). Unset, development allows the local origins a front-end dev
server uses (http://localhost:<any port>, http://127.0.0.1:<any port>) and production allows
none. Credentials (cookies, client certificates, the Authorization header being exposed to a
credentialed fetch) are allowed only towards listed origins; `*` lists every origin and then
turns credentials off, as the Fetch standard requires.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware

from kameng.settings import Settings

LOCAL_ORIGINS = r"https?://(localhost|127\.0\.0\.1)(:[0-9]{1,5})?"


@dataclass(frozen=True)
class OriginPolicy:
    origins: tuple[str, ...]
    pattern: str | None

    @classmethod
    def of(cls, settings: Settings) -> OriginPolicy:
        if settings.cors_origins is None:
            return cls((), LOCAL_ORIGINS if settings.env == "development" else None)
        listed = tuple(o.strip().rstrip("/") for o in settings.cors_origins.split(",") if o.strip())
        return cls(listed, None)

    @property
    def any_origin(self) -> bool:
        return "*" in self.origins

    def allows(self, origin: str) -> bool:
        origin = origin.rstrip("/")
        return (self.any_origin or origin in self.origins
                or (self.pattern is not None and re.fullmatch(self.pattern, origin) is not None))

    @property
    def enabled(self) -> bool:
        return bool(self.origins) or self.pattern is not None

    def middleware(self) -> Middleware | None:
        if not self.enabled:
            return None
        return Middleware(
            CORSMiddleware,
            allow_origins=["*"] if self.any_origin else list(self.origins),
            allow_origin_regex=None if self.pattern is None else f"^{self.pattern}$",
            allow_credentials=not self.any_origin,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type", "Accept", "X-Request-ID", "If-None-Match"],
            expose_headers=["X-Request-ID", "ETag"],
            max_age=600,
        )
