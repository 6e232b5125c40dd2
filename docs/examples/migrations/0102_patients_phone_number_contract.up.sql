-- migration: contract
-- Contract (docs/zero-downtime.md): every instance of the patient service now uses
-- `phone_number`; `phone` and the trigger that kept it in step go. Applied only by
-- `invoke deploy --phase N --contract`, after everything else.

drop trigger if exists patients_phone_in_step on patients;
drop function if exists patients_phone_in_step();
alter table patients drop column if exists phone;
