-- Undo the contract: back to the expanded state (both columns, kept in step).
alter table patients add column if not exists phone text;

create or replace function patients_phone_in_step() returns trigger
    language plpgsql set search_path = public, pg_temp as $$
begin
    if tg_op = 'INSERT' then
        new.phone_number := coalesce(new.phone_number, new.phone);
        new.phone := coalesce(new.phone, new.phone_number);
    elsif new.phone is distinct from old.phone then
        new.phone_number := new.phone;
    elsif new.phone_number is distinct from old.phone_number then
        new.phone := new.phone_number;
    end if;
    return new;
end
$$;

create or replace trigger patients_phone_in_step before insert or update of phone, phone_number on patients
    for each row execute function patients_phone_in_step();

update patients set phone = phone_number where phone is distinct from phone_number;
