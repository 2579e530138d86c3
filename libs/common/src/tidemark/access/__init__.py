"""Who may do what: API tokens with a scope (``read`` < ``write`` < ``admin``), configured ones and ones
created through the API (``/v1/tokens``, owned by connector-svc), which every service learns from the
``token.created`` and ``token.revoked`` events into its own table."""

from tidemark.access.scopes import Scope, scope_for_method
from tidemark.access.tokens import Principal, TokenRegistry, digest, parse_token_entry

__all__ = ["Principal", "Scope", "TokenRegistry", "digest", "parse_token_entry", "scope_for_method"]
