//! Schedule entries in Redis and the exactly-once firing script (DESIGN.md §3.5). See issue 4.
