"""Resource types. Importing this package registers every type for the journal."""

from . import iam, kms, monitoring, neon, postgres, s3  # noqa: F401  (registers every resource type)
