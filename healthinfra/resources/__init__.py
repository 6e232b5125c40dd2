"""Resource types. Importing this package registers every type for the journal."""

from . import host_service, iam, kms, local_env, monitoring, neon, postgres, railway, s3  # noqa: F401  (registers every resource type)
