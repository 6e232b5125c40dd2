-- 0001 core tables (phase 1): who uses the platform, patients, providers,
-- appointments, medical records, and the audit log every PHI access writes to.
-- Keys are UUIDs (no guessable patient ids); every table records when rows change.

create table users (
    id            uuid primary key default gen_random_uuid(),
    email         text not null unique check (position('@' in email) > 1),
    password_hash text not null,
    role          text not null check (role in ('patient', 'provider', 'admin', 'service')),
    is_active     boolean not null default true,
    created_at    timestamptz not null default now(),
    updated_at    timestamptz not null default now()
);

create table patients (
    id                   uuid primary key default gen_random_uuid(),
    user_id              uuid unique references users (id) on delete restrict,
    medical_record_number text not null unique,
    first_name           text not null,
    last_name            text not null,
    date_of_birth        date not null,
    sex                  text check (sex in ('female', 'male', 'other', 'unknown')),
    phone                text,
    address              jsonb,
    created_at           timestamptz not null default now(),
    updated_at           timestamptz not null default now()
);

create table providers (
    id          uuid primary key default gen_random_uuid(),
    user_id     uuid unique references users (id) on delete restrict,
    -- lint: accept ban-char-field because an NPI is exactly ten digits (the check below): no padding to surprise anyone
    npi         char(10) not null unique check (npi ~ '^[0-9]{10}$'),
    first_name  text not null,
    last_name   text not null,
    specialty   text not null,
    is_active   boolean not null default true,
    created_at  timestamptz not null default now(),
    updated_at  timestamptz not null default now()
);

create table appointments (
    id          uuid primary key default gen_random_uuid(),
    patient_id  uuid not null references patients (id) on delete restrict,
    provider_id uuid not null references providers (id) on delete restrict,
    starts_at   timestamptz not null,
    ends_at     timestamptz not null,
    status      text not null default 'scheduled'
                check (status in ('scheduled', 'confirmed', 'completed', 'cancelled', 'no_show')),
    reason      text,
    created_at  timestamptz not null default now(),
    updated_at  timestamptz not null default now(),
    check (ends_at > starts_at)
);
create index appointments_patient_idx on appointments (patient_id);
create index appointments_provider_idx on appointments (provider_id, starts_at);

create table medical_records (
    id             uuid primary key default gen_random_uuid(),
    patient_id     uuid not null references patients (id) on delete restrict,
    provider_id    uuid references providers (id) on delete set null,
    appointment_id uuid references appointments (id) on delete set null,
    record_type    text not null check (record_type in ('note', 'diagnosis', 'prescription', 'lab_result', 'imaging', 'document')),
    summary        text,
    body           jsonb not null default '{}'::jsonb,
    document_key   text,
    recorded_at    timestamptz not null default now(),
    created_at     timestamptz not null default now(),
    updated_at     timestamptz not null default now()
);
create index medical_records_patient_idx on medical_records (patient_id, recorded_at desc);

create table audit_log (
    id          bigint generated always as identity primary key,
    occurred_at timestamptz not null default now(),
    actor       text not null,
    action      text not null check (action in ('insert', 'update', 'delete', 'select', 'login', 'export')),
    table_name  text not null,
    row_key     text,
    details     jsonb not null default '{}'::jsonb
);
create index audit_log_occurred_idx on audit_log (occurred_at);
create index audit_log_table_idx on audit_log (table_name, occurred_at);
