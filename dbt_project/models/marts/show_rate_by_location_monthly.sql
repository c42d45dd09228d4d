-- Show-rate per location and local month; see the show_rate_rollup macro for the definition.
{{ show_rate_rollup('month', by_trainer=false) }}
