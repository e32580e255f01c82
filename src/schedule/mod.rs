//! Cron expressions and time zones: next fire times and misfires (pure, no I/O). See issue 4.
