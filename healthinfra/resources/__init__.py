"""Resource types. Importing this package registers every type for the journal."""

from . import iam, postgres  # noqa: F401
