-- 0002 PHI protection (phase 2): row-level security on patient data and an audit
-- trail of every change to PHI tables. The contract with the services is in
-- docs/security-guide.md: each transaction sets
--   app.user_id  the uuid of the end user the service acts for
-- The end user's role comes from the `users` table, never from a setting a
-- service could choose: only a user whose users.role is provider or admin sees
-- every patient. A session that sets no user sees no patient rows at all.

create function app_user_is_clinical() returns boolean
    language sql stable security definer set search_path = public, pg_temp as $$
    select exists (select 1 from users
                    where id = nullif(current_setting('app.user_id', true), '')::uuid
                      and role in ('provider', 'admin') and is_active)
$$;

create function app_user_patient_ids() returns setof uuid
    language sql stable security definer set search_path = public, pg_temp as $$
    select id from patients where user_id = nullif(current_setting('app.user_id', true), '')::uuid
$$;

alter table patients enable row level security;
alter table patients force row level security;
create policy patients_own_or_clinical on patients
    using (app_user_is_clinical() or user_id = nullif(current_setting('app.user_id', true), '')::uuid)
    with check (app_user_is_clinical() or user_id = nullif(current_setting('app.user_id', true), '')::uuid);

alter table medical_records enable row level security;
alter table medical_records force row level security;
create policy medical_records_own_or_clinical on medical_records
    using (app_user_is_clinical() or patient_id in (select app_user_patient_ids()))
    with check (app_user_is_clinical() or patient_id in (select app_user_patient_ids()));

-- Who, when, which table, which action, which row: never the PHI values themselves.
-- SECURITY DEFINER: the trigger writes whatever the service's own privileges are.
-- (The two functions above stay callable by everyone, as the policies need: they only
-- answer for the session's own app.user_id.)
create function audit_phi_change() returns trigger
    language plpgsql security definer set search_path = public, pg_temp as $$
begin
    insert into audit_log (actor, action, table_name, row_key, details)
    values (session_user,
            lower(tg_op),
            tg_table_name,
            case when tg_op = 'DELETE' then old.id::text else new.id::text end,
            jsonb_build_object('app_user_id', nullif(current_setting('app.user_id', true), '')));
    return null;
end
$$;
revoke all on function audit_phi_change() from public;

create trigger patients_audit after insert or update or delete on patients
    for each row execute function audit_phi_change();
create trigger medical_records_audit after insert or update or delete on medical_records
    for each row execute function audit_phi_change();
create trigger appointments_audit after insert or update or delete on appointments
    for each row execute function audit_phi_change();
create trigger users_audit after insert or update or delete on users
    for each row execute function audit_phi_change();

-- Services may add their own audit events (reads, logins), but only as themselves:
-- a row naming another actor is refused. Nobody but the trigger and the admin reads it.
alter table audit_log enable row level security;
alter table audit_log force row level security;
create policy audit_log_append_as_self on audit_log for insert with check (actor = session_user);
