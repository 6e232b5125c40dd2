-- Undo 0003: drops the ml schema. The runner refuses this while ml.model_registry,
-- ml.features or ml.predictions hold rows, unless --destroy-data is given.
drop view if exists ml.prediction_volume;
drop view if exists ml.appointment_volume;
drop table if exists ml.predictions;
drop table if exists ml.features;
drop table if exists ml.model_registry;
drop schema if exists ml;
