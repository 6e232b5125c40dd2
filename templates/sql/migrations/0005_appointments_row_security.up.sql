-- 0005 row security on appointments (phase 3, with the appointment service), forced as on
-- patients and medical_records, and by the same rule: a clinician (users.role provider or
-- admin, active) sees every appointment; any other user only their own patient's; a session
-- that sets no app.user_id none. Writes are checked the same way.

alter table appointments enable row level security;
alter table appointments force row level security;
create policy appointments_own_or_clinical on appointments
    using ((select app_session_is_clinical()) or patient_id in (select app_session_patient_ids()))
    with check ((select app_session_is_clinical()) or patient_id in (select app_session_patient_ids()));
