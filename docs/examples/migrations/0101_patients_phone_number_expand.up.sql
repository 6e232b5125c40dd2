-- migration: no-transaction
-- Expand (docs/zero-downtime.md): `patients.phone` becomes `patients.phone_number`.
-- After this, old instances of the patient service still read and write `phone`, new ones
-- `phone_number`; a trigger keeps the two in step, so either version sees what the other wrote.
-- No transaction: the backfill commits batch by batch, so no row lock is held for long and a
-- stopped run goes on where it stopped (each statement is recorded once it ran).

alter table patients add column if not exists phone_number text;

create or replace function patients_phone_in_step() returns trigger
    language plpgsql set search_path = public, pg_temp as $$
begin
    if tg_op = 'INSERT' then
        new.phone_number := coalesce(new.phone_number, new.phone);
        new.phone := coalesce(new.phone, new.phone_number);
    elsif new.phone is distinct from old.phone then
        new.phone_number := new.phone;  -- an old instance wrote
    elsif new.phone_number is distinct from old.phone_number then
        new.phone := new.phone_number;  -- a new instance wrote
    end if;
    return new;
end
$$;

create or replace trigger patients_phone_in_step before insert or update of phone, phone_number on patients
    for each row execute function patients_phone_in_step();

-- The backfill: 1,000 rows a transaction, until none is left (the trigger keeps the rest in step)
do $$
declare
    moved integer;
begin
    loop
        update patients set phone_number = phone
         where id in (select id from patients where phone_number is null and phone is not null limit 1000);
        get diagnostics moved = row_count;
        exit when moved = 0;
        commit;
    end loop;
end
$$;
