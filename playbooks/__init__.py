"""Playbooks: ordered steps per area, each with its phase and tags. Read top to bottom."""
