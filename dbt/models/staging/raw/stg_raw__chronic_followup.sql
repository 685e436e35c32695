with

records as (
    {{ staged_records('chronic_followup') }}
),

renamed as (
    select
        org_code,
        followup_id,
        record_id,
        disease_code,
        followup_date,
        followup_method as followup_method_code,
        sbp,
        dbp,
        fasting_glucose,
        followup_class as followup_class_code,
        next_followup_date,
        doctor_id,
        {{ staging_lineage() }}
    from records
)

select * from renamed
