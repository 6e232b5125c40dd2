"""Providers: the only modules that talk to servers (PostgreSQL, AWS)."""
