-- Undo 0004: 0002's policies and its PUBLIC helpers back; no table is dropped.
grant execute on function app_user_is_clinical(), app_user_patient_ids() to public;

alter policy medical_records_own_or_clinical on medical_records
    using (app_user_is_clinical() or patient_id in (select app_user_patient_ids()))
    with check (app_user_is_clinical() or patient_id in (select app_user_patient_ids()));

alter policy patients_own_or_clinical on patients
    using (app_user_is_clinical() or user_id = nullif(current_setting('app.user_id', true), '')::uuid)
    with check (app_user_is_clinical() or user_id = nullif(current_setting('app.user_id', true), '')::uuid);

drop function if exists app_session_patient_ids();
drop function if exists app_session_is_clinical();
drop view if exists app_session_patients;
drop view if exists app_session_user;
