-- 0003 the AI service's data (phase 4), in a schema of its own: `ml`.
--   model_registry  every model version the AI hosts may run: where it lives in the
--                   ml-models bucket and the sha256 its file must have
--   features        per-patient feature vectors the AI service reads (no names, no contact data)
--   predictions     what a model version said about a patient; insert-only for the AI service
-- And analytics views that aggregate appointments and predictions: counts, never rows of PHI.

create schema ml;
revoke all on schema ml from public;

create table ml.model_registry (
    id          uuid primary key default gen_random_uuid(),
    name        text not null check (name ~ '^[a-z][a-z0-9_-]{0,62}$'),
    version     text not null check (version ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$'),
    s3_key      text not null check (s3_key ~ '^models/[^/].*' and s3_key !~ '\.\.'),
    checksum    text not null check (checksum ~ '^[0-9a-f]{64}$'),
    status      text not null default 'staged' check (status in ('staged', 'active', 'retired')),
    created_at  timestamptz not null default now(),
    updated_at  timestamptz not null default now(),
    unique (name, version)
);
-- at most one active version per model: the hosts run exactly one
create unique index model_registry_one_active on ml.model_registry (name) where status = 'active';

create table ml.features (
    id           uuid primary key default gen_random_uuid(),
    patient_id   uuid not null references public.patients (id) on delete cascade,
    feature_set  text not null,
    vector       jsonb not null,
    computed_at  timestamptz not null default now(),
    unique (patient_id, feature_set)
);

create table ml.predictions (
    id          uuid primary key default gen_random_uuid(),
    model_id    uuid not null references ml.model_registry (id) on delete restrict,
    patient_id  uuid not null references public.patients (id) on delete restrict,
    result      jsonb not null,
    created_at  timestamptz not null default now()
);
create index predictions_patient_idx on ml.predictions (patient_id, created_at desc);
create index predictions_model_idx on ml.predictions (model_id, created_at);

-- predictions are about patients: every change lands in the audit log, like the PHI tables
create trigger predictions_audit after insert or update or delete on ml.predictions
    for each row execute function public.audit_phi_change();

-- analytics: aggregates only, so a reader learns volumes, not patients
create view ml.appointment_volume as
    select date_trunc('day', starts_at) as day, provider_id, status, count(*) as appointments
      from public.appointments
     group by 1, 2, 3;

create view ml.prediction_volume as
    select r.name as model, r.version, date_trunc('day', p.created_at) as day, count(*) as predictions,
           count(distinct p.patient_id) as patients
      from ml.predictions p join ml.model_registry r on r.id = p.model_id
     group by 1, 2, 3;
