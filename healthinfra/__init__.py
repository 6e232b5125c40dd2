"""healthcare-infra: an Ansible-style, Terraform-safe infrastructure runner.

The package holds the engine (inventory, steps, resources, journal, lock, runner)
and the providers it drives. Nothing here does I/O at import time.
"""
