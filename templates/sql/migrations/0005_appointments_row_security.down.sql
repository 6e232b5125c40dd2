-- Undo 0005: no table is dropped, so no data is lost.
drop policy if exists appointments_own_or_clinical on appointments;
alter table appointments no force row level security;
alter table appointments disable row level security;
