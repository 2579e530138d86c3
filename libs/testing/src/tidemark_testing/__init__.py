"""Tidemark's test tools, kept out of the runtime package: the connector contract suite
(for anyone writing a connector), the PostgreSQL harness, the REST-catalog test server and
helpers that run a service's app in-process. A development dependency only."""
