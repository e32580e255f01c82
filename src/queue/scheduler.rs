//! The scheduler loop: sleeps until the earliest due schedule and fires it (DESIGN.md §3.5). See issue 4.
