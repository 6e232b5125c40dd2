"""The embedded local environment: PostgreSQL from a wheel and a moto server daemon."""
