-- The patient whose page a refund was issued from: a payment that settled several patients'
-- statements (a guarantor's) gives the refund back on that patient's statements first.
ALTER TABLE refunds ADD COLUMN for_patient TEXT REFERENCES patients(id);
