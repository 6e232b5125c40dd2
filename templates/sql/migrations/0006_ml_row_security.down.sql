-- Undo 0006: no table is dropped, so no data is lost.
drop policy if exists predictions_own_clinical_or_inference on ml.predictions;
alter table ml.predictions no force row level security;
alter table ml.predictions disable row level security;
drop policy if exists features_own_clinical_or_inference on ml.features;
alter table ml.features no force row level security;
alter table ml.features disable row level security;
