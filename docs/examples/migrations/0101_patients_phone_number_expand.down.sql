-- Undo the expand: the old column was never touched, so nothing is lost.
drop trigger if exists patients_phone_in_step on patients;
drop function if exists patients_phone_in_step();
alter table patients drop column if exists phone_number;
