with

source as (
    select * from {{ source('reference', 'code_value') }}
),

renamed as (
    select
        code_system,
        code_system_zh,
        code_system_en,
        code,
        label as code_label,
        code_groups
    from source
)

select * from renamed
