-- Undo 0002: no table is dropped, so no data is lost; the audit rows already written stay.
drop policy if exists audit_log_append_as_self on audit_log;
alter table audit_log no force row level security;
alter table audit_log disable row level security;
drop trigger if exists users_audit on users;
drop trigger if exists appointments_audit on appointments;
drop trigger if exists medical_records_audit on medical_records;
drop trigger if exists patients_audit on patients;
drop function if exists audit_phi_change();
drop policy if exists medical_records_own_or_clinical on medical_records;
alter table medical_records no force row level security;
alter table medical_records disable row level security;
drop policy if exists patients_own_or_clinical on patients;
alter table patients no force row level security;
alter table patients disable row level security;
drop function if exists app_user_patient_ids();
drop function if exists app_user_is_clinical();
