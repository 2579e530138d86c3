"""Test helpers: the broker and PostgreSQL harness, and app fixtures' building blocks."""
