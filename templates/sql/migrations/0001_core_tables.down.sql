-- Undo 0001. The runner refuses to run this while any of these tables holds rows,
-- unless --destroy-data is given.
drop table if exists audit_log;
drop table if exists medical_records;
drop table if exists appointments;
drop table if exists providers;
drop table if exists patients;
drop table if exists users;
