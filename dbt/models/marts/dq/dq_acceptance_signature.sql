{#- Signed monthly acceptance: every signed version of a month, one row per organisation it
    judged, with the signature and the subsidy due. Rows of a signing that stopped before
    its signature row are left out (the signature commits a version). -#}
{{ config(order_by='(period_month, signature_version, org_code)') }}

with

signature as (
    select * from {{ ref('stg_dq__acceptance_signature') }}
),

signed as (
    select * from {{ ref('stg_dq__acceptance_signed') }}
),

subsidy as (
    select * from {{ ref('stg_dq__subsidy_line') }}
),

final as (
    select
        signed.period_month as period_month,
        signed.signature_version as signature_version,
        signature.is_latest_version as is_latest_version,
        signature.reopened_at is not null as is_reopened,
        signature.signed_by as signed_by,
        signature.signed_at as signed_at,
        signature.scoring_config_fingerprint as scoring_config_fingerprint,
        signed.org_code as org_code,
        signed.org_name as org_name,
        signed.org_kind as org_kind,
        signed.peer_group as peer_group,
        signed.county_code as county_code,
        signed.days_judged as days_judged,
        signed.days_at_bar as days_at_bar,
        signed.days_at_bar_pct as days_at_bar_pct,
        signed.is_accepted as is_accepted,
        signed.blocking_failures as blocking_failures,
        subsidy.subsidy_phase as subsidy_phase,
        subsidy.subsidy_paid_in_month as subsidy_paid_in_month,
        coalesce(subsidy.subsidy_yuan, 0) as subsidy_yuan
    from signed
    inner join signature
        on {{ same_keys(
            'signed', 'signature', ['period_month', 'signature_version', 'signed_at']
        ) }}
    left join subsidy
        on {{ same_keys(
            'signed', 'subsidy', ['period_month', 'signature_version', 'signed_at', 'org_code']
        ) }}
)

select * from final
