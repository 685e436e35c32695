{#- Of a version only its first signature counts (two signings racing both write version
    N; expectations/programme/signoff.py reads the first too): the later one, and the rows and
    subsidy lines stamped with its signed_at, are left out. -#}

with

every_signature as (
    select * from {{ source('dq', 'acceptance_signature') }}
),

first_signature as (
    select
        month,
        version,
        min(signed_at) as first_signed_at
    from every_signature
    group by month, version
),

signature as (
    select every_signature.*
    from every_signature
    inner join first_signature
        on
            every_signature.month = first_signature.month
            and every_signature.version = first_signature.version
            and every_signature.signed_at = first_signature.first_signed_at
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
