"""Token scopes. Each scope includes the ones below it: ``admin`` can do what ``write`` can, ``write``
what ``read`` can."""

from __future__ import annotations

from enum import StrEnum

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class Scope(StrEnum):
    READ = "read"
    WRITE = "write"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return _RANK[self]

    def allows(self, needed: Scope) -> bool:
        return self.rank >= needed.rank


_RANK = {Scope.READ: 0, Scope.WRITE: 1, Scope.ADMIN: 2}


def scope_for_method(method: str) -> Scope:
    """What a /v1 route needs by default: reading is ``read``; anything that can change state is ``write``."""
    return Scope.READ if method.upper() in READ_METHODS else Scope.WRITE
