-- 0006 row security on the AI service's patient data (phase 4): ml.features and
-- ml.predictions, forced, by the rule of patients and medical_records (a clinician sees
-- every row, any other user only their own patient's, a session with no app.user_id none),
-- with one addition: the AI service's batch work. ai_svc (names.db_role('ai')) infers for
-- the platform, not for one end user: a session of that role that sets no app.user_id reads
-- every feature vector and may record a prediction for any patient. Acting for a user, it
-- is held to that user's rows like anyone else. (It still may not read predictions at all:
-- inventories/services.yml gives it INSERT only.)

alter table ml.features enable row level security;
alter table ml.features force row level security;
create policy features_own_clinical_or_inference on ml.features
    using ((select app_session_is_clinical())
           or patient_id in (select app_session_patient_ids())
           or (current_user = 'ai_svc' and nullif(current_setting('app.user_id', true), '') is null))
    with check ((select app_session_is_clinical()) or patient_id in (select app_session_patient_ids()));

alter table ml.predictions enable row level security;
alter table ml.predictions force row level security;
create policy predictions_own_clinical_or_inference on ml.predictions
    using ((select app_session_is_clinical()) or patient_id in (select app_session_patient_ids()))
    with check ((select app_session_is_clinical())
                or patient_id in (select app_session_patient_ids())
                or (current_user = 'ai_svc' and nullif(current_setting('app.user_id', true), '') is null));
