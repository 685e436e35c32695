with

records as (
    {{ staged_records('elderly_check') }}
),

renamed as (
    select
        org_code,
        check_id,
        record_id,
        check_date,
        age_at_check,
        height_cm,
        weight_kg,
        bmi,
        sbp,
        dbp,
        self_care_score,
        {{ staging_lineage() }}
    from records
)

select * from renamed
