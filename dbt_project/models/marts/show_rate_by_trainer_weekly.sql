-- Show-rate per trainer and local week; see the show_rate_rollup macro for the definition.
{{ show_rate_rollup('week', by_trainer=true) }}
