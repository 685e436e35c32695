{{ incremental_by_business_date(order_by='(business_date, org_code, rx_item_key)') }}

with

items as (
    {{ stale_rows('stg_raw__prescription') }}
),

persons as (
    {{ patients_of(['items']) }}
),

final as (
    select
        concat(items.org_code, '|', ifNull(items.rx_item_id, '')) as rx_item_key,
        concat(
            items.org_code, '|', ifNull(items.encounter_type_code, ''), '|',
            ifNull(items.encounter_id, '')
        ) as encounter_key,
        items.org_code as org_code,
        items.rx_item_id as rx_item_id,
        items.rx_id as rx_id,
        items.encounter_type_code as encounter_type_code,
        items.encounter_id as encounter_id,
        items.patient_id as patient_id,
        persons.person_key as person_key,
        items.drug_code as drug_code,
        items.drug_name as drug_name,
        items.is_antibiotic as is_antibiotic,
        items.ddd_count as ddd_count,
        items.route_code as route_code,
        items.is_infusion_iv as is_infusion_iv,
        items.quantity as quantity,
        items.amount as amount,
        items.ordered_at as ordered_at,
        items.order_date as order_date,
        items.business_date as business_date,
        items.has_dq_warning as has_dq_warning,
        items.source_changed_at as source_changed_at
    from items
    left join persons
        on {{ same_keys('items', 'persons', ['org_code', 'patient_id']) }}
)

select * from final
