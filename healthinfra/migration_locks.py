"""What each statement of a migration locks: PostgreSQL's lock levels by statement, from the
parse tree pglast gives (migration_sql.py parses; this module only classifies). Pure.

The lock levels are those of PostgreSQL's documentation ("Explicit Locking" and each command's
page) and of `AlterTableGetLockLevel` in tablecmds.c: the strongest *table* lock a statement
takes, named as the docs name them, or `none` for statements that touch only the catalog.
"""

from __future__ import annotations

from typing import Any

from .lock_waits import (
    ACCESS_EXCLUSIVE,
    ACCESS_SHARE,
    EXCLUSIVE,
    LOCK_MODES,
    NONE,
    ROW_EXCLUSIVE,
    ROW_SHARE,
    SHARE,
    SHARE_ROW_EXCLUSIVE,
    SHARE_UPDATE_EXCLUSIVE,
)

# --- what a statement does ------------------------------------------------------


def _name(value: Any) -> str:
    """An enum member's name, or the value itself (pglast gives enums; be lenient)."""
    return getattr(value, "name", str(value))


def _qualified(schema: str | None, name: str) -> str:
    return name if not schema or schema == "public" else f"{schema}.{name}"


def _rangevar(rv: Any) -> str:
    return _qualified(rv.schemaname, rv.relname)


def _parts(obj: Any) -> list[str]:
    """An object name given as String nodes (`ml`, `features`) as plain strings."""
    if hasattr(obj, "sval"):
        return [obj.sval]
    if isinstance(obj, list | tuple):
        return [part.sval for part in obj if hasattr(part, "sval")]
    return []


def _from_parts(parts: list[str]) -> str:
    if not parts:
        return ""
    return _qualified(parts[-2] if len(parts) > 1 else None, parts[-1])


def _referenced(node: Any) -> list[str]:
    """Relations a query (or any node) reads, CTE names left out, in a stable order."""
    if node is None:
        return []
    from pglast.visitors import referenced_relations

    names = set()
    for name in referenced_relations(node):
        schema, _, rel = name.replace('"', "").rpartition(".")
        names.add(_qualified(schema or None, rel))
    return sorted(names)


class _Locks:
    """The strongest lock per relation, in the order relations were first named."""

    def __init__(self) -> None:
        self.by_relation: dict[str, str] = {}
        self.unnamed = NONE  # a lock on relations the statement does not name (DO, VACUUM of all)

    def add(self, relation: str, mode: str) -> None:
        if not relation:
            self.unnamed = _stronger(self.unnamed, mode)
            return
        self.by_relation[relation] = _stronger(self.by_relation.get(relation, NONE), mode)

    def strongest(self) -> str:
        mode = self.unnamed
        for held in self.by_relation.values():
            mode = _stronger(mode, held)
        return mode


def _stronger(a: str, b: str) -> str:
    return a if LOCK_MODES.index(a) >= LOCK_MODES.index(b) else b


_RELATION_OBJECTS = {
    "OBJECT_TABLE",
    "OBJECT_INDEX",
    "OBJECT_VIEW",
    "OBJECT_MATVIEW",
    "OBJECT_SEQUENCE",
    "OBJECT_FOREIGN_TABLE",
}
_ON_TABLE_OBJECTS = {"OBJECT_TRIGGER", "OBJECT_POLICY", "OBJECT_RULE", "OBJECT_TABCONSTRAINT", "OBJECT_COLUMN"}

_LABELS = {
    "OBJECT_MATVIEW": "MATERIALIZED VIEW",
    "OBJECT_TABCONSTRAINT": "CONSTRAINT",
    "OBJECT_FDW": "FOREIGN DATA WRAPPER",
}


def _label(objtype: Any) -> str:
    name = _name(objtype)
    return _LABELS.get(name, name.removeprefix("OBJECT_").replace("_", " "))


# storage parameters `alter table … set (…)` changes under SHARE UPDATE EXCLUSIVE (reloptions.c);
# any other (a view's security_barrier, user_catalog_table, …) takes ACCESS EXCLUSIVE
_LIGHT_RELOPTIONS = {
    "fillfactor",
    "parallel_workers",
    "toast_tuple_target",
    "vacuum_index_cleanup",
    "vacuum_truncate",
    "log_autovacuum_min_duration",
}

# ALTER TABLE subcommands below ACCESS EXCLUSIVE (AlterTableGetLockLevel); the rest take it
_ALTER_TABLE_LOCKS = {
    "AT_SetStatistics": SHARE_UPDATE_EXCLUSIVE,
    "AT_SetOptions": SHARE_UPDATE_EXCLUSIVE,
    "AT_ResetOptions": SHARE_UPDATE_EXCLUSIVE,
    "AT_ClusterOn": SHARE_UPDATE_EXCLUSIVE,
    "AT_DropCluster": SHARE_UPDATE_EXCLUSIVE,
    "AT_ValidateConstraint": SHARE_UPDATE_EXCLUSIVE,
    "AT_DetachPartitionFinalize": SHARE_UPDATE_EXCLUSIVE,
    "AT_EnableTrig": SHARE_ROW_EXCLUSIVE,
    "AT_EnableAlwaysTrig": SHARE_ROW_EXCLUSIVE,
    "AT_EnableReplicaTrig": SHARE_ROW_EXCLUSIVE,
    "AT_DisableTrig": SHARE_ROW_EXCLUSIVE,
    "AT_EnableTrigAll": SHARE_ROW_EXCLUSIVE,
    "AT_DisableTrigAll": SHARE_ROW_EXCLUSIVE,
    "AT_EnableTrigUser": SHARE_ROW_EXCLUSIVE,
    "AT_DisableTrigUser": SHARE_ROW_EXCLUSIVE,
}

_TRANSACTION_KINDS = {
    "TRANS_STMT_BEGIN": "BEGIN",
    "TRANS_STMT_START": "START TRANSACTION",
    "TRANS_STMT_COMMIT": "COMMIT",
    "TRANS_STMT_ROLLBACK": "ROLLBACK",
    "TRANS_STMT_SAVEPOINT": "SAVEPOINT",
    "TRANS_STMT_RELEASE": "RELEASE SAVEPOINT",
    "TRANS_STMT_ROLLBACK_TO": "ROLLBACK TO SAVEPOINT",
    "TRANS_STMT_PREPARE": "PREPARE TRANSACTION",
    "TRANS_STMT_COMMIT_PREPARED": "COMMIT PREPARED",
    "TRANS_STMT_ROLLBACK_PREPARED": "ROLLBACK PREPARED",
}

# statements that take no table lock at all (catalog rows only): kind by node name
_CATALOG_ONLY = {
    "CreateFunctionStmt": "CREATE FUNCTION",
    "AlterFunctionStmt": "ALTER FUNCTION",
    "CreateExtensionStmt": "CREATE EXTENSION",
    "AlterExtensionStmt": "ALTER EXTENSION",
    "AlterExtensionContentsStmt": "ALTER EXTENSION",
    "CreateSchemaStmt": "CREATE SCHEMA",
    "CreateSeqStmt": "CREATE SEQUENCE",
    "CreateEnumStmt": "CREATE TYPE",
    "CompositeTypeStmt": "CREATE TYPE",
    "CreateRangeStmt": "CREATE TYPE",
    "AlterEnumStmt": "ALTER TYPE",
    "CreateDomainStmt": "CREATE DOMAIN",
    "CreateRoleStmt": "CREATE ROLE",
    "AlterRoleStmt": "ALTER ROLE",
    "AlterRoleSetStmt": "ALTER ROLE",
    "DropRoleStmt": "DROP ROLE",
    "AlterDefaultPrivilegesStmt": "ALTER DEFAULT PRIVILEGES",
    "VariableSetStmt": "SET",
    "VariableShowStmt": "SHOW",
    "CreateCastStmt": "CREATE CAST",
    "DefineStmt": "CREATE",
    "CreateEventTrigStmt": "CREATE EVENT TRIGGER",
    "AlterOwnerStmt": "ALTER OWNER",
}


def describe(node: Any) -> dict[str, Any]:
    """kind, node, lock, locks, tables_created, table_written, index_name and concurrently of
    one parse node."""
    node_name = type(node).__name__
    locks = _Locks()
    facts: dict[str, Any] = {"node": node_name}
    kind = _CATALOG_ONLY.get(node_name, node_name)

    if node_name == "CreateStmt":
        kind = "CREATE TABLE"
        created = _rangevar(node.relation)
        facts["tables_created"] = (created,)
        for parent in node.inhRelations or ():
            # a partition locks its parent ACCESS EXCLUSIVE; a child of INHERITS, SHARE UPDATE EXCLUSIVE
            locks.add(_rangevar(parent), ACCESS_EXCLUSIVE if node.partbound else SHARE_UPDATE_EXCLUSIVE)
        for element in node.tableElts or ():
            element_name = type(element).__name__
            constraints = element.constraints or () if element_name == "ColumnDef" else (element,)
            for constraint in constraints:
                if type(constraint).__name__ == "Constraint" and _name(constraint.contype) == "CONSTR_FOREIGN":
                    referenced = _rangevar(constraint.pktable)
                    if referenced != created:  # a self-reference locks nothing that exists yet
                        locks.add(referenced, SHARE_ROW_EXCLUSIVE)
            if element_name == "TableLikeClause":
                locks.add(_rangevar(element.relation), ACCESS_SHARE)
    elif node_name == "CreateTableAsStmt":
        matview = _name(node.objtype) == "OBJECT_MATVIEW"
        kind = "CREATE MATERIALIZED VIEW" if matview else "CREATE TABLE AS"
        if not matview:
            facts["tables_created"] = (_rangevar(node.into.rel),)
        for name in _referenced(node.query):
            locks.add(name, ACCESS_SHARE)
    elif node_name == "ViewStmt":
        kind = "CREATE VIEW"
        if node.replace:  # an existing view is replaced under ACCESS EXCLUSIVE
            locks.add(_rangevar(node.view), ACCESS_EXCLUSIVE)
        for name in _referenced(node.query):
            locks.add(name, ACCESS_SHARE)
    elif node_name == "AlterTableStmt":
        kind = f"ALTER {_label(node.objtype)}"
        _alter_table(node, locks, facts)
    elif node_name == "IndexStmt":
        facts["concurrently"] = bool(node.concurrent)
        # an index lives in its table's schema: named like relations (`ml.ix`, but `ix` in public)
        facts["index_name"] = _qualified(node.relation.schemaname, node.idxname) if node.idxname else None
        kind = "CREATE INDEX CONCURRENTLY" if node.concurrent else "CREATE INDEX"
        locks.add(_rangevar(node.relation), SHARE_UPDATE_EXCLUSIVE if node.concurrent else SHARE)
    elif node_name == "DropStmt":
        kind, facts["concurrently"] = _drop(node, locks)
    elif node_name == "RenameStmt":
        kind = _rename(node, locks)
    elif node_name == "AlterObjectSchemaStmt":
        kind = f"ALTER {_label(node.objectType)} SET SCHEMA"
        if _name(node.objectType) in _RELATION_OBJECTS and node.relation is not None:
            locks.add(_rangevar(node.relation), ACCESS_EXCLUSIVE)
    elif node_name in ("CreatePolicyStmt", "AlterPolicyStmt"):
        kind = "CREATE POLICY" if node_name == "CreatePolicyStmt" else "ALTER POLICY"
        locks.add(_rangevar(node.table), ACCESS_EXCLUSIVE)
    elif node_name == "CreateTrigStmt":
        kind = "CREATE CONSTRAINT TRIGGER" if node.isconstraint else "CREATE TRIGGER"
        locks.add(_rangevar(node.relation), SHARE_ROW_EXCLUSIVE)
    elif node_name == "RuleStmt":
        kind = "CREATE RULE"
        locks.add(_rangevar(node.relation), ACCESS_EXCLUSIVE)
    elif node_name == "CreateStatsStmt":
        kind = "CREATE STATISTICS"
        for relation in node.relations or ():
            if type(relation).__name__ == "RangeVar":
                locks.add(_rangevar(relation), SHARE_UPDATE_EXCLUSIVE)
    elif node_name == "CommentStmt":
        kind = "COMMENT"
        objtype = _name(node.objtype)
        parts = _parts(node.object)
        if objtype in _RELATION_OBJECTS:
            locks.add(_from_parts(parts), SHARE_UPDATE_EXCLUSIVE)
        elif objtype in _ON_TABLE_OBJECTS:
            locks.add(_from_parts(parts[:-1]), SHARE_UPDATE_EXCLUSIVE)
    elif node_name in ("GrantStmt", "GrantRoleStmt"):
        kind = "GRANT" if node.is_grant else "REVOKE"  # catalog only: no table lock
    elif node_name in ("UpdateStmt", "DeleteStmt", "MergeStmt"):
        kind = {"UpdateStmt": "UPDATE", "DeleteStmt": "DELETE", "MergeStmt": "MERGE"}[node_name]
        target = _rangevar(node.relation)
        facts["table_written"] = target
        locks.add(target, ROW_EXCLUSIVE)
        for name in _referenced(node):
            locks.add(name, ACCESS_SHARE)
    elif node_name == "InsertStmt":
        kind = "INSERT"
        locks.add(_rangevar(node.relation), ROW_EXCLUSIVE)
        for name in _referenced(node):
            locks.add(name, ACCESS_SHARE)
    elif node_name == "SelectStmt":
        kind = "SELECT"
        mode = ROW_SHARE if node.lockingClause else ACCESS_SHARE
        for name in _referenced(node):
            locks.add(name, mode)
    elif node_name == "TruncateStmt":
        kind = "TRUNCATE"
        for relation in node.relations or ():
            locks.add(_rangevar(relation), ACCESS_EXCLUSIVE)
    elif node_name == "LockStmt":
        kind = "LOCK"
        for relation in node.relations or ():
            locks.add(_rangevar(relation), LOCK_MODES[node.mode])
    elif node_name == "VacuumStmt":
        kind = "VACUUM" if node.is_vacuumcmd else "ANALYZE"
        full = any(getattr(option, "defname", "") == "full" for option in node.options or ())
        mode = ACCESS_EXCLUSIVE if full else SHARE_UPDATE_EXCLUSIVE
        relations = [r.relation for r in node.rels or () if getattr(r, "relation", None) is not None]
        for relation in relations:
            locks.add(_rangevar(relation), mode)
        if not relations:
            locks.add("", mode)
    elif node_name == "ClusterStmt":
        kind = "CLUSTER"
        locks.add(_rangevar(node.relation) if node.relation is not None else "", ACCESS_EXCLUSIVE)
    elif node_name == "ReindexStmt":
        concurrent = any(getattr(p, "defname", "") == "concurrently" for p in node.params or ())
        facts["concurrently"] = concurrent
        kind = "REINDEX CONCURRENTLY" if concurrent else "REINDEX"
        name = _rangevar(node.relation) if node.relation is not None else ""
        locks.add(name, SHARE_UPDATE_EXCLUSIVE if concurrent else ACCESS_EXCLUSIVE)
    elif node_name == "RefreshMatViewStmt":
        facts["concurrently"] = bool(node.concurrent)
        kind = "REFRESH MATERIALIZED VIEW CONCURRENTLY" if node.concurrent else "REFRESH MATERIALIZED VIEW"
        locks.add(_rangevar(node.relation), EXCLUSIVE if node.concurrent else ACCESS_EXCLUSIVE)
    elif node_name == "AlterSeqStmt":
        kind = "ALTER SEQUENCE"
        locks.add(_rangevar(node.sequence), SHARE_ROW_EXCLUSIVE)
    elif node_name == "AlterDomainStmt":
        kind = "ALTER DOMAIN"
        if node.subtype == "C":  # ADD CONSTRAINT checks every column of the domain, under SHARE
            locks.add("", SHARE)
    elif node_name == "TransactionStmt":
        kind = _TRANSACTION_KINDS.get(_name(node.kind), "TRANSACTION")
    elif node_name in ("DoStmt", "CallStmt"):
        # the code it runs may take any lock on any table: assume the strongest
        kind = "DO" if node_name == "DoStmt" else "CALL"
        locks.add("", ACCESS_EXCLUSIVE)
    elif node_name not in _CATALOG_ONLY:
        # unknown to this module: whatever relation it names, assume the strongest lock
        for name in _referenced(node):
            locks.add(name, ACCESS_EXCLUSIVE)

    facts["kind"] = kind
    facts["lock"] = locks.strongest()
    facts["locks"] = tuple(locks.by_relation.items())
    return facts


def _alter_table(node: Any, locks: _Locks, facts: dict[str, Any]) -> None:
    """Each subcommand's lock on the table (the statement holds the strongest), and the SHARE
    ROW EXCLUSIVE a new foreign key takes on the table it references."""
    table = _rangevar(node.relation)
    view = _name(node.objtype) in ("OBJECT_VIEW", "OBJECT_MATVIEW")
    for cmd in node.cmds or ():
        subtype = _name(cmd.subtype)
        mode = _ALTER_TABLE_LOCKS.get(subtype, ACCESS_EXCLUSIVE)
        definition = cmd.def_
        constraints: list[Any] = []
        if subtype == "AT_AddConstraint" and type(definition).__name__ == "Constraint":
            constraints = [definition]
            if _name(definition.contype) == "CONSTR_FOREIGN":
                mode = SHARE_ROW_EXCLUSIVE  # as strong as CREATE TRIGGER: it adds triggers to both tables
        elif subtype == "AT_AddColumn" and type(definition).__name__ == "ColumnDef":
            constraints = list(definition.constraints or ())
        elif subtype in ("AT_SetRelOptions", "AT_ResetRelOptions") and not view:
            names = [getattr(option, "defname", "") for option in definition or ()]
            if names and all(n in _LIGHT_RELOPTIONS or n.startswith("autovacuum_") for n in names):
                mode = SHARE_UPDATE_EXCLUSIVE
        elif subtype == "AT_AttachPartition":
            mode = SHARE_UPDATE_EXCLUSIVE  # on the parent; the partition itself ACCESS EXCLUSIVE
            locks.add(_rangevar(definition.name), ACCESS_EXCLUSIVE)
        elif subtype == "AT_DetachPartition" and definition is not None and definition.concurrent:
            mode = SHARE_UPDATE_EXCLUSIVE
            facts["concurrently"] = True
        locks.add(table, mode)
        for constraint in constraints:
            if type(constraint).__name__ == "Constraint" and _name(constraint.contype) == "CONSTR_FOREIGN":
                locks.add(_rangevar(constraint.pktable), SHARE_ROW_EXCLUSIVE)


def _drop(node: Any, locks: _Locks) -> tuple[str, bool]:
    objtype = _name(node.removeType)
    concurrent = bool(node.concurrent)
    kind = f"DROP {_label(node.removeType)}" + (" CONCURRENTLY" if concurrent else "")
    for obj in node.objects or ():
        parts = _parts(obj)
        if objtype in _RELATION_OBJECTS:
            # DROP INDEX also locks the index's table, which the statement does not name
            locks.add(_from_parts(parts), SHARE_UPDATE_EXCLUSIVE if concurrent else ACCESS_EXCLUSIVE)
        elif objtype in _ON_TABLE_OBJECTS:
            locks.add(_from_parts(parts[:-1]), ACCESS_EXCLUSIVE)
    return kind, concurrent


def _rename(node: Any, locks: _Locks) -> str:
    rename = _name(node.renameType)
    relation = _rangevar(node.relation) if node.relation is not None else ""
    if rename == "OBJECT_COLUMN":
        kind = f"ALTER {_label(node.relationType)} RENAME COLUMN"
    elif rename == "OBJECT_TABCONSTRAINT":
        kind = "ALTER TABLE RENAME CONSTRAINT"
    else:
        kind = f"ALTER {_label(node.renameType)} RENAME"
    if rename == "OBJECT_INDEX":
        locks.add(relation, SHARE_UPDATE_EXCLUSIVE)  # since PostgreSQL 12
    elif relation and (rename in _RELATION_OBJECTS or rename in _ON_TABLE_OBJECTS):
        locks.add(relation, ACCESS_EXCLUSIVE)
    return kind
