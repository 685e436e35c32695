with

signature as (
    select * from {{ source('dq', 'acceptance_signature') }}
),

reopening as (
    select
        month,
        version,
        min(at) as reopened_at
    from {{ source('dq', 'acceptance_reopening') }}
    group by month, version
),

renamed as (
    select
        signature.month as period_month,
        signature.version as signature_version,
        signature.signer as signed_by,
        signature.signed_at as signed_at,
        signature.config_fingerprint as scoring_config_fingerprint,
        signature.phase as subsidy_phase,
        signature.rules_fingerprints as rules_fingerprints,
        signature.appeal_ids as appeal_ids,
        signature.waiver_ids as waiver_ids,
        signature.organisations as organisations,
        signature.passed as organisations_accepted,
        signature.subsidy_yuan as subsidy_yuan,
        reopening.reopened_at as reopened_at,
        signature.version = max(signature.version) over (
            partition by signature.month
        ) as is_latest_version
    from signature
    left join reopening
        on
            signature.month = reopening.month
            and signature.version = reopening.version
)

select * from renamed
