-- Show-rate per location and local week; see the show_rate_rollup macro for the definition.
{{ show_rate_rollup('week', by_trainer=false) }}
