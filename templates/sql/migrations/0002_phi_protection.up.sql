-- 0002 PHI protection (phase 2): row-level security on patient data and an audit
-- trail of every change to PHI tables. The contract with the services is in
-- docs/security-guide.md: each transaction sets
--   app.user_id  the uuid of the end user the service acts for
--   app.role     that user's role: patient | provider | admin
-- A session that sets neither sees no patient rows at all.

alter table patients enable row level security;
alter table patients force row level security;
create policy patients_own_or_clinical on patients
    using (current_setting('app.role', true) in ('provider', 'admin')
           or user_id = nullif(current_setting('app.user_id', true), '')::uuid)
    with check (current_setting('app.role', true) in ('provider', 'admin')
                or user_id = nullif(current_setting('app.user_id', true), '')::uuid);

alter table medical_records enable row level security;
alter table medical_records force row level security;
create policy medical_records_own_or_clinical on medical_records
    using (current_setting('app.role', true) in ('provider', 'admin')
           or patient_id in (select id from patients
                              where user_id = nullif(current_setting('app.user_id', true), '')::uuid))
    with check (current_setting('app.role', true) in ('provider', 'admin')
                or patient_id in (select id from patients
                                   where user_id = nullif(current_setting('app.user_id', true), '')::uuid));

-- Who, when, which table, which action, which row: never the PHI values themselves.
-- SECURITY DEFINER so that services need no privilege on audit_log beyond their INSERT,
-- and can never update or delete it.
create function audit_phi_change() returns trigger
    language plpgsql security definer set search_path = public, pg_temp as $$
begin
    insert into audit_log (actor, action, table_name, row_key, details)
    values (session_user,
            lower(tg_op),
            tg_table_name,
            case when tg_op = 'DELETE' then old.id::text else new.id::text end,
            jsonb_build_object('app_user_id', nullif(current_setting('app.user_id', true), ''),
                               'app_role', nullif(current_setting('app.role', true), '')));
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
