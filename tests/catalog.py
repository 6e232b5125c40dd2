"""A full snapshot of what the runner manages, to compare before and after."""

from __future__ import annotations


def snapshot(inventory) -> dict:
    import psycopg

    from healthinfra.providers.aws import AwsClients
    from healthinfra.providers.postgres import admin_conninfo

    shot: dict = {}
    with psycopg.connect(**admin_conninfo(inventory), autocommit=True) as conn:
        shot["databases"] = conn.execute(
            "select datname, datacl::text from pg_database where not datistemplate order by 1").fetchall()
        shot["roles"] = conn.execute(
            """select rolname, rolcanlogin, rolsuper, rolconnlimit from pg_roles
                where rolname not like 'pg\\_%' order by 1""").fetchall()
        names = [d for d, _ in shot["databases"]]
    if inventory.database["name"] in names:
        with psycopg.connect(**admin_conninfo(inventory, inventory.database["name"]), autocommit=True) as conn:
            shot["columns"] = conn.execute(
                """select table_schema, table_name, column_name, data_type, is_nullable, column_default
                     from information_schema.columns where table_schema not in ('pg_catalog', 'information_schema')
                    order by 1, 2, 3""").fetchall()
            shot["constraints"] = conn.execute(
                """select conrelid::regclass::text, conname, pg_get_constraintdef(oid) from pg_constraint
                    where connamespace = 'public'::regnamespace order by 1, 2""").fetchall()
            shot["grants"] = conn.execute(
                """select c.relname, c.relacl::text from pg_class c
                    where c.relnamespace = 'public'::regnamespace order by 1""").fetchall()
    iam = AwsClients(inventory).client("iam")
    roles = iam.list_roles()["Roles"]
    shot["iam_roles"] = sorted(
        (r["RoleName"], r.get("Description", ""), tuple(sorted((t["Key"], t["Value"]) for t in
                                                               iam.list_role_tags(RoleName=r["RoleName"])["Tags"])))
        for r in roles)
    return shot
