//! Autoscaling policy: from queue backlog to desired replicas (pure, no I/O). See issue 5.
