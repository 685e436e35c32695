with

records as (
    {{ staged_records('prescription') }}
),

renamed as (
    select
        org_code,
        rx_item_id,
        rx_id,
        encounter_type as encounter_type_code,
        encounter_id,
        patient_id,
        drug_code,
        drug_name,
        ifNull(is_antibiotic = 1, false) as is_antibiotic,
        ddd_count,
        route_code,
        -- the route code system's infusion_iv group, from the contracts
        ifNull(route_code in {{ sql_tuple(var('infusion_route_codes')) }}, false)
            as is_infusion_iv,
        quantity,
        amount,
        ordered_at,
        toDate(ordered_at) as order_date,
        {{ staging_lineage() }}
    from records
)

select * from renamed
