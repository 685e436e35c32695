with

line as (
    select * from {{ source('dq', 'subsidy_line') }}
),

renamed as (
    select
        month as period_month,
        version as signature_version,
        signed_at,
        org_code,
        phase as subsidy_phase,
        amount_yuan as subsidy_yuan,
        currency,
        paid_in as subsidy_paid_in_month
    from line
)

select * from renamed
