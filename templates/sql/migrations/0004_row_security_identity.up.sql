-- 0004 row security without PUBLIC helpers (phase 2). 0002's policies asked two SECURITY
-- DEFINER functions who the session acts for, and every role could call them: any login
-- role could learn, for a user id it named, whether that user is a clinician and which
-- patient rows are theirs. From here:
--   app_session_user, app_session_patients
--       the same answers as views owned by the admin (security_barrier: a caller's own
--       predicate cannot see the rows the view filters out). Nobody may read them but the
--       services granted SELECT in inventories/services.yml: those whose policies need them
--       and that may not read `users` or `patients` themselves (appointment, ai).
--   app_session_is_clinical(), app_session_patient_ids()
--       what the policies call. SECURITY INVOKER: each runs with its caller's privileges, so
--       it tells a service nothing the service could not read itself: through the views when
--       the service was granted them, else from `users`/`patients` under its own grants (the
--       patient and provider services read them; `patients` then under its own policy).
--       A role with neither is refused.
--   app_user_is_clinical(), app_user_patient_ids()
--       kept, callable by their owner only.
-- The contract with the services does not change: each transaction sets app.user_id.

create view app_session_user with (security_barrier) as
    select id as user_id, (role in ('provider', 'admin') and is_active) as clinical
      from users
     where id = nullif(current_setting('app.user_id', true), '')::uuid;

create view app_session_patients with (security_barrier) as
    select id as patient_id
      from patients
     where user_id = nullif(current_setting('app.user_id', true), '')::uuid;


create function app_session_is_clinical() returns boolean
    language plpgsql stable security invoker set search_path = public, pg_temp as $$
begin
    if has_table_privilege('public.app_session_user', 'SELECT') then
        return exists (select 1 from app_session_user where clinical);
    end if;
    return exists (select 1 from users
                    where id = nullif(current_setting('app.user_id', true), '')::uuid
                      and role in ('provider', 'admin') and is_active);
end
$$;

create function app_session_patient_ids() returns setof uuid
    language plpgsql stable security invoker set search_path = public, pg_temp as $$
begin
    if has_table_privilege('public.app_session_patients', 'SELECT') then
        return query select patient_id from app_session_patients;
    else
        return query select id from patients
                      where user_id = nullif(current_setting('app.user_id', true), '')::uuid;
    end if;
end
$$;

alter policy patients_own_or_clinical on patients
    using ((select app_session_is_clinical()) or user_id = nullif(current_setting('app.user_id', true), '')::uuid)
    with check ((select app_session_is_clinical()) or user_id = nullif(current_setting('app.user_id', true), '')::uuid);

alter policy medical_records_own_or_clinical on medical_records
    using ((select app_session_is_clinical()) or patient_id in (select app_session_patient_ids()))
    with check ((select app_session_is_clinical()) or patient_id in (select app_session_patient_ids()));

revoke execute on function app_user_is_clinical(), app_user_patient_ids() from public;
