"""Resource types: one small class per kind of thing the runner manages.

`RESOURCE_TYPES` is the explicit list the registry (`registry.py`) rebuilds journal and
plan entries from; adding a type is its class and a line here.
"""

from __future__ import annotations

from .host_service import HostService
from .iam import IamManagedPolicy, IamRole, IamRolePolicy
from .kms import KmsKey
from .local_env import EnvFile
from .monitoring import Alarm, Dashboard, LogGroup, MetricFilter, SnsTopic
from .neon import NeonBranch, NeonDatabase, NeonEndpoint, NeonProject, NeonRole
from .postgres import PgDatabase, PgExtension, PgGrants, PgMigration, PgRole
from .railway import (
    RailwayDeployment,
    RailwayEnvironment,
    RailwayInstance,
    RailwayProject,
    RailwayService,
    RailwayVariables,
)
from .s3 import S3Bucket

RESOURCE_TYPES = (
    PgDatabase,
    PgMigration,
    PgRole,
    PgGrants,
    PgExtension,
    NeonProject,
    NeonBranch,
    NeonEndpoint,
    NeonRole,
    NeonDatabase,
    KmsKey,
    S3Bucket,
    IamManagedPolicy,
    IamRole,
    IamRolePolicy,
    LogGroup,
    MetricFilter,
    SnsTopic,
    Alarm,
    Dashboard,
    EnvFile,
    RailwayProject,
    RailwayEnvironment,
    RailwayService,
    RailwayInstance,
    RailwayVariables,
    RailwayDeployment,
    HostService,
)
