"""The sample city: synthetic uploads of Xinyang's hospitals and county platforms.

    generate(out, start, days, hospitals=40, counties=10, scale=0.02, faults="default", seed=7)
    apply_corrections(out)

`generate` writes an inbox directory laid out as the upload standard says
(`<org_code>/<dataset>/<YYYY-MM-DD>/<file>`), with file modification times standing for the
receive times, plus `_registry.csv` (the organisations used), `_ground_truth.jsonl` (one item
per injected defect or allowed format variant) and `_corrections/` (staged corrected
re-uploads that `apply_corrections` moves into the inbox). Dataset and field names come from
the contracts; the same seed gives byte-identical files and mtimes.

Volumes: scale 1.0 with the 40 hospitals and 10 counties of the bundled registry is about a
million rows for a weekday. Persons come from one population pool shared by hospitals and
counties, so the datasets agree with each other (references, deaths, diagnoses).

Where rules of the standard pull against each other, clean data (`faults="none"`) is made
to pass all of them, as follows:

* Record lag vs. long stays. A discharge is uploaded on its discharge day, and the stay's
  prescription items and lab results travel in the same batch (after settlement), so they
  can reference the admission. Only orders and results of the last seven days of the stay
  (from D-6 00:00) are included: older ones would be late records.
* References vs. the beginning of the inbox. Patients are uploaded in the batch of the day
  they are first seen by that hospital (updated_at that day), so visits, discharges,
  prescriptions and labs always reference a patient of the same or an earlier batch. The
  first day therefore has more patient rows than later days.
* Health records are created (created_date = the business date, sometimes the day before)
  in the batch of the first follow-up or elderly check that needs them; the event-time lag
  rules out re-sending records created long ago.
* Death deregistration. The status-2 re-upload of a dead person's health record carries
  created_date = the date of the deregistration (the day the death is registered), because
  created_date is the event time of health_record and the original creation date would make
  every deregistration a late record.
* Deaths. A person's death date is fixed before any data is drawn; from that date on (the
  date itself included) the person has no visit, admission or prescription. A stay that ends
  with an in-hospital death (discharge_method 5, discharged on the death date) is admitted
  before that date and its last prescription items are dated the day before, so the rule
  holds whether a checker compares dates or timestamps with the death date.
* Chronic follow-ups are drawn only among residents with an I10/E11 diagnosis (outpatient
  diagnosis, principal or other inpatient diagnosis) in a hospital batch of the same day or
  earlier; elderly checks among residents aged 65 or more on the check date.
* Receive times. Hospital files arrive between D+1 00:05 and D+1 07:30 (a batch holds events
  up to 23:59:59 of D, so it cannot be complete earlier); county files too, or on the
  morning of the working day that is their deadline. Both windows end 30 minutes before the
  deadline of contracts/timeliness.yaml.
* Volumes. Small hospitals at small scales have a few encounters a day, and lab results and
  prescription items come in clusters, so a day can fall to a few rows by chance. An
  organisation-day on which the volume rule (volume_not_collapsed) would fail is drawn
  again; the ground truth lists a `volume_collapse` for exactly the batches that rule fails
  on as received: the injected collapse where it can be judged, and anything a new draw
  could not avoid, with the reason (volumes.py).
* In-hospital deaths and their registration (section 7.1). The county of the person's
  region registers the death on the death date or up to two days later, with the discharge
  date as death date, so the reconciliation (judged 30 days after the discharge upload)
  holds; the injected unregistered death is planned only in a window of more than 30 days.
  The other 7.1 defects go into added stays of residents not seen that day (copies of a
  generated stay), so they take no row from the other injectors.
* op_level. The standard only requires op_level when there is an operation, so the injected
  defect is an operation code without op_level (a rule the contracts can check); clean data
  has op_level exactly when there is an operation code.
"""

from samplecity.generator import apply_corrections, generate

__all__ = ["apply_corrections", "generate"]
